"""Data-parallel training over MPI: the hand-written loop, then ``fit``, on N processes or on one.

Run it with ``mpiexec -n 2 python examples/data_parallel.py`` (``pip install 'chainrule[distributed]'``
brings mpi4py and mpiexec), or with ``python examples/data_parallel.py`` as one process. Every process runs
this whole script; each is one *rank*, trains on its share of every batch, and averages its gradients with the
others during ``backward()``. Only rank 0 prints.
"""

import chainrule as cr
from chainrule import data, distributed, nn, optim
from chainrule.train import evaluate, fit

group = distributed.init()  # rank and size from mpiexec (MPI.COMM_WORLD); rank 0 of 1 without it
say = print if group.rank == 0 else (lambda *args: None)
say(f"{group.size} rank(s)")

cr.manual_seed(0)  # every rank builds the same model; DistributedDataParallel gives all of them rank 0's anyway
splits = data.spirals(n_samples=1200, seed=0)

# 1. The loop by hand. Each rank takes its share of every epoch's shuffle (the shuffle itself comes from the
#    global generator, which DistributedDataParallel made the same on every rank) in batches of 32, so one
#    step sees 32 * size samples. The loop is the one-process loop: backward() returns with the gradients
#    averaged over the ranks (their allreduces start during backward, as each bucket of gradients fills up).
model = distributed.DistributedDataParallel(nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 3)))
optimizer = optim.Adam(model.parameters(), lr=0.02)
loss_fn = nn.CrossEntropyLoss()
sampler = distributed.DistributedSampler(splits.train)
loader = data.DataLoader(splits.train, batch_size=32, shuffle=True, sampler=sampler)
for epoch in range(1, 11):
    total = 0.0
    for points, labels in loader:
        loss = loss_fn(model(points), labels)
        optimizer.zero_grad()
        loss.backward()  # the gradients of the whole step's batch
        optimizer.step()
        total += loss.item()
    if epoch % 5 == 0:  # this rank's mean loss, averaged over the ranks: the loss of the whole data
        say(f"epoch {epoch}  training loss {group.mean(total / len(loader)):.4f}")
say("hand-written loop, test:", evaluate(model.module, splits.test, loss="cross_entropy"))

# 2. The same with fit: distributed=True shards the data, averages gradients, loss and metrics over the ranks,
#    and lets only rank 0 print (and write checkpoints, with a ModelCheckpoint callback).
model = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 3))
history = fit(model, splits.train, optimizer="adam", lr=0.02, epochs=10, batch_size=32, val_split=0.1, seed=0,
              verbose=2 if group.rank == 0 else 0, distributed=True)  # fmt: skip
say(f"fit: validation accuracy {history['val_accuracy'][-1]:.3f}")
say("fit, test:", evaluate(model, splits.test, loss="cross_entropy"))
