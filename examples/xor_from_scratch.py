"""XOR from scratch: a 2-4-1 network trained by hand-written gradient descent on chainrule tensors.

Run it with ``python examples/xor_from_scratch.py``. Every step is visible: forward pass, loss,
backward pass (the engine applies the chain rule), and the update.
"""

import numpy as np

import chainrule as cr

rng = cr.manual_seed(0)

# The four XOR cases and their targets.
x = cr.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # (4, 2)
y = cr.tensor([[0.0], [1.0], [1.0], [0.0]])  # (4, 1)

# Parameters: a hidden layer of 4 tanh units and one linear output.
w1 = cr.tensor(rng.uniform(-1, 1, (2, 4)), requires_grad=True)
b1 = cr.tensor(np.zeros(4), requires_grad=True)
w2 = cr.tensor(rng.uniform(-1, 1, (4, 1)), requires_grad=True)
b2 = cr.tensor(np.zeros(1), requires_grad=True)
params = [w1, b1, w2, b2]
learning_rate = 0.2

for step in range(501):
    hidden = (x @ w1 + b1).tanh()  # (4, 4)
    out = hidden @ w2 + b2  # (4, 1)
    loss = ((out - y) ** 2).mean()  # mean squared error

    for p in params:
        p.grad = None
    loss.backward()  # dloss/dp for every parameter, by the chain rule

    with cr.no_grad():  # the update itself is not part of the graph
        for p in params:
            p -= learning_rate * p.grad

    if step % 100 == 0:
        print(f"step {step:3d}  loss {loss.item():.6f}")

print("predictions:", np.round(out.detach().numpy().ravel(), 3))
