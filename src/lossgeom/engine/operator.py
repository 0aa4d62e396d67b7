"""The operator protocol of the engine: a symmetric linear map on flat parameter vectors.

Everything in :mod:`lossgeom.engine` (Lanczos, Hutchinson, SLQ) and the projected curvatures of
:mod:`lossgeom.geometry` work on any object with ``matvec``, ``n_params``, ``device`` and ``dtype``:
the Hessian of a network (:class:`lossgeom.engine.hessian.HessianOperator`), a dense matrix
(:class:`MatrixOperator`), or your own (a Gauss-Newton product, a deflated operator, ...).
Loops whose vectors are independent of each other's products (Hutchinson probes, random projections) hand
them over in blocks through :func:`apply_rows`, so that an operator with a faster batched ``matmat`` (and a
``block`` size) uses it; any other operator gets one ``matvec`` per vector.

Every operator of the engine also applies with ``@`` (``op @ v`` for v of shape (N,); ``op @ V`` for a set of
vectors V as rows (k, N), the library's one orientation, giving the rows A v_i) and converts to a
``scipy.sparse.linalg.LinearOperator`` with ``op.to_scipy()`` (:func:`to_scipy` for any object with ``matvec``).

Example::

    >>> import torch
    >>> op = MatrixOperator(torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64))
    >>> isinstance(op, LinearOperator), op.matvec(torch.tensor([1.0, 0.0])).tolist(), op.hvps
    (True, [2.0, 1.0], 1)
    >>> (op @ torch.eye(2, dtype=torch.float64)).tolist()  # rows A e_i
    [[2.0, 1.0], [1.0, 3.0]]
    >>> op.to_scipy().matvec([0.0, 1.0]).tolist()
    [1.0, 3.0]
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class LinearOperator(Protocol):
    """A symmetric N x N operator applied to flat vectors of length ``n_params`` on ``device`` in ``dtype``."""

    n_params: int
    device: torch.device
    dtype: torch.dtype

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The product A v (``v`` is cast to the operator's device and dtype)."""
        ...


class MatrixOperator:
    """A dense symmetric matrix as an operator (for tests, examples and references); counts its products."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix
        self.n_params = matrix.shape[0]
        self.device, self.dtype = matrix.device, matrix.dtype
        self.hvps = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.hvps += 1
        return self.matrix @ v.to(self.device, self.dtype)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """Rows A v_i for the rows of ``vectors`` (k, N); counts k products."""
        self.hvps += len(vectors)
        return vectors.to(self.device, self.dtype) @ self.matrix.T

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """``op @ v``: A v for v of shape (N,), the rows A v_i for V of shape (k, N)."""
        return matmul(self, v)

    def to_scipy(self):
        """This operator as a ``scipy.sparse.linalg.LinearOperator`` (float64 numpy in and out)."""
        return to_scipy(self)


def block_size(op) -> int:
    """How many independent vectors to hand :func:`apply_rows` at once: the operator's ``block``, else 1."""
    return max(int(getattr(op, "block", 1)), 1)


def apply_rows(op, vectors: torch.Tensor) -> torch.Tensor:
    """Rows A v_i for the rows of ``vectors`` (k, N): the operator's ``matmat`` when it has one, else k products."""
    matmat = getattr(op, "matmat", None)
    if matmat is not None:
        return matmat(vectors)
    return torch.stack([op.matvec(v) for v in vectors])


def dense_matrix(op, dtype=torch.float64) -> torch.Tensor:
    """The operator as a dense (N, N) matrix in ``dtype`` on the CPU, from N products (in its blocks): A e_i for the
    unit vectors e_i, symmetrized against rounding. For small models (N up to a few thousand): N products cost what
    N Lanczos steps do, far less than differentiating an explicit loss twice. Memory: the matrix and one block of
    rows (filled and symmetrized in place; N = 14,000 in float64 is 1.6 GB)."""
    n, size = op.n_params, block_size(op)
    matrix = torch.empty(n, n, dtype=dtype)
    for start in range(0, n, size):
        stop = min(start + size, n)
        units = torch.zeros(stop - start, n, dtype=op.dtype, device=op.device)
        units[torch.arange(stop - start), torch.arange(start, stop)] = 1
        matrix[start:stop] = apply_rows(op, units).to(dtype).cpu()
        del units
    for start in range(0, n, size):  # (A + A^T) / 2, one band of rows and its columns at a time
        stop = min(start + size, n)
        band = (matrix[start:stop, start:] + matrix[start:, start:stop].T) / 2
        matrix[start:stop, start:] = band
        matrix[start:, start:stop] = band.T
    return matrix


def matmul(op, v: torch.Tensor) -> torch.Tensor:
    """``op @ v`` for any operator: ``matvec`` for v of shape (N,), the rows A v_i (``matmat`` when the operator
    has one) for V of shape (k, N)."""
    if v.ndim == 1:
        return op.matvec(v)
    if v.ndim == 2:
        matmat = getattr(op, "matmat", None)
        return matmat(v) if matmat is not None else torch.stack([op.matvec(row) for row in v])
    raise ValueError(f"op @ v takes a vector (N,) or rows (k, N), got shape {tuple(v.shape)}")


def to_scipy(op):
    """Any operator (``matvec``, ``n_params``; ``matmat`` on rows if it has one) as a
    ``scipy.sparse.linalg.LinearOperator`` of shape (N, N): numpy in (any real dtype), numpy out, matvec and matmat
    (SciPy's columns (N, k), converted to and from the engine's rows), rmatvec = matvec (symmetric).

    Its dtype is float32 for a float32 operator and float64 otherwise, so that SciPy's solvers aim at the accuracy
    the products have (``eigsh`` with its default tol=0 asks for the dtype's machine precision)."""
    from scipy.sparse.linalg import LinearOperator as ScipyLinearOperator

    dtype = np.float32 if getattr(op, "dtype", torch.float64) == torch.float32 else np.float64
    out = torch.float32 if dtype == np.float32 else torch.float64

    def vector(x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(-1)
        return op.matvec(torch.from_numpy(np.ascontiguousarray(flat))).detach().to("cpu", out).numpy()

    def matrix(X: np.ndarray) -> np.ndarray:
        rows = torch.from_numpy(np.ascontiguousarray(np.asarray(X, dtype=np.float64).T))
        return matmul(op, rows).detach().to("cpu", out).numpy().T

    n = op.n_params
    return ScipyLinearOperator((n, n), matvec=vector, rmatvec=vector, matmat=matrix, rmatmat=matrix, dtype=dtype)
