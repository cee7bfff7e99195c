"""Train an MLP on the handwritten digits two ways: a hand-written PyTorch-style loop, then ``fit``.

Run it with ``python examples/train_digits.py`` (needs the ``datasets`` extra for scikit-learn's digits).
"""

import chainrule as cr
from chainrule import data, nn, optim
from chainrule.train import evaluate, fit

cr.manual_seed(0)
splits = data.digits()  # 1,438 training and 359 test images of 8×8 pixels in [0, 1], labels 0-9
print(f"{len(splits.train)} training and {len(splits.test)} test images of shape {splits.info.input_shape}")

# 1. The loop by hand: forward, loss, backward, step.
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
loader = data.DataLoader(splits.train, batch_size=64, shuffle=True, seed=0)
for epoch in range(1, 6):
    total = 0.0
    for images, labels in loader:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
    print(f"epoch {epoch}  training loss {total / len(splits.train):.4f}")
print("hand-written loop, test:", evaluate(model, splits.test, loss="cross_entropy"))

# 2. The same with fit: validation split, metrics, history and the over/underfitting verdict.
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
history = fit(model, splits.train, optimizer=optim.Adam(model.parameters(), lr=0.01), epochs=10, batch_size=64,
              val_split=0.1, seed=0, verbose=0)  # fmt: skip
print(f"fit: {len(history)} epochs, validation accuracy {history['val_accuracy'][-1]:.3f}")
print("fit, test:", evaluate(model, splits.test, loss="cross_entropy"))
print(history.diagnosis())
