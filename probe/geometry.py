"""Local geometry of an embedding map: its Jacobian, singular spectrum and directional Lipschitz estimates.

The paper (arXiv:2401.15568, Figs 3 and 4) backs its claims of large piecewise-linear equivalence
classes with the Jacobian J = df/dx of the embedding at an image: J is m x n with m (embedding size)
far below n (input size), so a null space of dimension >= n - m changes the embedding only to
second order. Everything here works on any map `f` taking a batch (B, *shape) to embeddings (B, m)
and a point `x0` of shape `shape`; `embedding_map` builds both from an Encoder in a stated input
space (`pixel`: [0,1] pixels at the model's resolution, `normalized`: the model's normalised input,
as the paper).

- `jacobian`: exact J by chunked, vectorised VJPs (vmap over one saved forward pass).
- `exact_spectrum`: singular values from the m x m Gram matrix J J^T in float64.
- `topk_spectrum`: top singular values/vectors matrix-free, from J^T u and J v products only.
- directions (`gaussian_directions`, `nullspace_directions`, `optimized_directions`, ...) and
  `lipschitz_estimates`: ||f(x0 + eps v) - f(x0)|| / eps over an eps grid, with the first-order error.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from probe.errors import ProbeError
from probe.progress import Progress, check, within

Tensor = torch.Tensor
EmbedFn = Callable[[Tensor], Tensor]

SPACES = ("pixel", "normalized")
ATTENTION = ("auto", "math", "default")
# Attention path for batched (vmap) VJPs. CPU, measured by benchmarks/bench_jacobian.py: the fused
# kernel's backward has no batching rule, so vmap loops over rows and math is faster. CUDA: not measured
# here; math is the path that surely batches (and the one forward mode needs).
AUTO_ATTENTION = {"cpu": "math", "cuda": "math"}
# Largest VJP chunk: on the CPU 32 rows keep the extra peak memory under 2 |J| for ViT-S/B-32 (measured
# 1.9 |J|); the CUDA cap is a guess, not measured here.
MAX_CHUNK = {"cpu": 32, "cuda": 256}
# How J v is computed when not told: on the CPU the VJP of the VJP (double backward) measured ~3x faster
# than forward-mode JVP on ViT-S-32 (0.19 s vs 0.57 s per product, one thread); forward mode first elsewhere.
PRODUCT_ORDER = {"cpu": ("double-vjp", "jvp"), "cuda": ("jvp", "double-vjp")}
MEMORY_FRACTION = 0.5  # share of the free memory (after J itself) the VJP chunks may use


# --- The map being probed -----------------------------------------------------------------------


@dataclass
class EmbeddingMap:
    """The embedding as a function of one input space, and the point (image) it is probed at."""

    f: EmbedFn          # (B, *shape) -> (B, m)
    x0: Tensor          # (*shape): the image in that space
    space: str


def embedding_map(encoder, image: Tensor, space: str = "normalized",
                  dtype: torch.dtype = torch.float32) -> EmbeddingMap:
    """An Encoder and a [0,1] image (3,H,W or 1,3,H,W, any size) -> the embedding as a function of
    `pixel` ([0,1] pixels at the model resolution) or `normalized` (the model's normalised input).

    dtype float64 probes a float64 copy of the model, for finite differences at small eps
    (float32 differences are rounding noise there)."""
    if space not in SPACES:
        raise ProbeError(f"input space {space!r} is not one of {', '.join(SPACES)}")
    if dtype not in (torch.float32, torch.float64):
        raise ProbeError(f"dtype {dtype} is not supported for geometry (use float32 or float64)")
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ProbeError(f"expected one RGB image (3,H,W), got shape {tuple(image.shape)}")
    if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
        raise ProbeError("image pixels must be finite and in [0,1]")
    with torch.no_grad():
        pixels = encoder.to_model_input(image[None].to(encoder.device, torch.float32))[0]
    if dtype == torch.float64:
        encoder = copy.deepcopy(encoder).double()
    embed = encoder.embed_normalized
    pixels = pixels.to(dtype)
    if space == "pixel":
        return EmbeddingMap(lambda p: embed(encoder.normalize(p)), pixels, space)
    return EmbeddingMap(embed, encoder.normalize(pixels[None])[0], space)


def _single(f: EmbedFn) -> Callable[[Tensor], Tensor]:
    """f on one unbatched input (*shape) -> (m,)."""
    return lambda x: f(x[None])[0]


def _check_point(f: EmbedFn, x0: Tensor) -> Tensor:
    """f(x0) as (m,), with clear errors for a bad point or a map that is not (B, *shape) -> (B, m)."""
    if not torch.is_floating_point(x0) or not torch.isfinite(x0).all():
        raise ProbeError("the input point must be a finite floating-point tensor")
    with torch.no_grad():
        y = f(x0[None])
    if y.dim() != 2 or y.shape[0] != 1:
        raise ProbeError(f"the map must send a batch (B, ...) to embeddings (B, m); got shape {tuple(y.shape)}")
    if not torch.isfinite(y).all():
        raise ProbeError("the embedding at the input point is not finite")
    return y[0]


@contextlib.contextmanager
def math_attention():
    """Attention through plain matmuls: the MHA fast path off and SDPA's math kernel only.

    Forward-mode AD and double backward need this (the fused kernels have no such formulas), and
    vmap batches it without a per-row fallback. Global switches are restored on exit."""
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


def _attention_context(attention: str, device: torch.device):
    if attention not in ATTENTION:
        raise ProbeError(f"attention {attention!r} is not one of {', '.join(ATTENTION)}")
    if attention == "auto":
        attention = AUTO_ATTENTION.get(device.type, "math")
    return math_attention() if attention == "math" else contextlib.nullcontext()


# --- Exact Jacobian -----------------------------------------------------------------------------


def available_memory(device: torch.device) -> int:
    """Free bytes on the device: CUDA's own count, else MemAvailable from /proc/meminfo."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30  # no /proc (not Linux): assume a modest 4 GiB


def saved_activation_bytes(f: EmbedFn, x0: Tensor) -> int:
    """Bytes autograd keeps from one forward pass (tensors in the graph, not weights): an upper bound
    on what one extra row of a batched VJP needs."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.requires_grad:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = x0.detach().clone().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _single(f)(x)
    return sum(storages.values())


def auto_chunk_size(f: EmbedFn, x0: Tensor, m: int) -> int:
    """Rows of J per batched VJP: as many as half the free memory (after J itself) allows, capped
    where larger chunks stop being faster."""
    row_bytes = x0.numel() * x0.element_size()
    free = available_memory(x0.device) - m * row_bytes
    if free <= 0:
        raise ProbeError(f"the {m} x {x0.numel()} Jacobian needs {m * row_bytes / 2**30:.2f} GiB, more than "
                         "is free here; use the matrix-free top-k method instead")
    per_row = saved_activation_bytes(f, x0) + row_bytes
    chunk = int(MEMORY_FRACTION * free // per_row)
    return max(1, min(chunk, m, MAX_CHUNK.get(x0.device.type, 32)))


@torch.no_grad()  # torch.func transforms still differentiate; this keeps weights out of it
def jacobian(f: EmbedFn, x0: Tensor, chunk_size: int | None = None, attention: str = "auto",
             progress: Progress | None = None) -> Tensor:
    """Exact Jacobian (m, n) of f at x0 (n = x0.numel()), one row per embedding dimension.

    One forward pass is saved; its VJP is vmapped over chunks of rows of the identity and written
    into a preallocated J, so the extra memory is one chunk's backward (chunk_size: None picks it
    from the free memory). attention: `math` (plain matmuls, batches under vmap), `default` (the
    fused kernels), or `auto` (the faster one for the device, see AUTO_ATTENTION). `progress` hears
    ("jacobian", rows done, m); returning False raises `probe.progress.Cancelled`."""
    y0 = _check_point(f, x0)
    m, n = y0.numel(), x0.numel()
    if chunk_size is not None and chunk_size < 1:
        raise ProbeError(f"chunk size must be >= 1, got {chunk_size}")
    with _attention_context(attention, x0.device):
        chunk = min(chunk_size or auto_chunk_size(f, x0, m), m)
        J = torch.empty(m, n, dtype=y0.dtype, device=x0.device)
        _, vjp_fn = torch.func.vjp(_single(f), x0)
        batched = torch.func.vmap(lambda u: vjp_fn(u)[0])
        eye = torch.eye(m, dtype=y0.dtype, device=x0.device)
        check(progress, "jacobian", 0, m)
        for start in range(0, m, chunk):
            rows = eye[start:start + chunk]
            J[start:start + chunk] = batched(rows).reshape(len(rows), n)
            check(progress, "jacobian", min(start + chunk, m), m)
    return J


# --- Spectra ------------------------------------------------------------------------------------


@dataclass
class Spectrum:
    """Singular values (descending) of J, and singular vectors where computed.

    left: (m, k) left singular vectors; right: (k, *shape) unit right singular vectors (input-space
    directions of largest change). numerical_rank counts values above tol = rtol * sigma_1; it is
    None when not all singular values were computed."""

    singular_values: Tensor                 # (r,) float64, descending
    left: Tensor | None
    right: Tensor | None
    rtol: float
    numerical_rank: int | None
    method: str
    m: int
    n: int
    info: dict = field(default_factory=dict)

    @property
    def tol(self) -> float:
        return self.rtol * float(self.singular_values[0]) if len(self.singular_values) else 0.0


def default_rtol(m: int, dtype: torch.dtype) -> float:
    """Relative rank tolerance m * machine epsilon of J's dtype (float32 J: ~1e-7 relative noise)."""
    return m * torch.finfo(dtype).eps


COLUMN_BLOCK = 8192  # columns of J turned to float64 at a time


def _jmul(J: Tensor, G: Tensor) -> Tensor:
    """J g for each row g of G (b, n), in float64 -> (m, b), without copying J whole."""
    return sum(J[:, s:s + COLUMN_BLOCK].double() @ G[:, s:s + COLUMN_BLOCK].double().T
               for s in range(0, J.shape[1], COLUMN_BLOCK))


def _jtmul(J: Tensor, C: Tensor) -> Tensor:
    """J^T c for each column c of C (m, b), in float64 -> (b, n)."""
    return torch.cat([(J[:, s:s + COLUMN_BLOCK].double().T @ C).T for s in range(0, J.shape[1], COLUMN_BLOCK)], 1)


def gram(J: Tensor) -> Tensor:
    """J J^T in float64, accumulated over column blocks so J is never copied whole."""
    G = torch.zeros(J.shape[0], J.shape[0], dtype=torch.float64, device=J.device)
    for s in range(0, J.shape[1], COLUMN_BLOCK):
        Jb = J[:, s:s + COLUMN_BLOCK].double()
        G += Jb @ Jb.T
    return G


def exact_spectrum(J: Tensor, shape: tuple[int, ...] | None = None, vectors: int = 0,
                   rtol: float | None = None) -> Spectrum:
    """All m singular values of J (m, n) from eigh of the float64 Gram matrix, and the top `vectors`
    right singular vectors V = J^T U / sigma (at most the numerical rank), shaped (k, *shape)."""
    m, n = J.shape
    rtol = default_rtol(m, J.dtype) if rtol is None else rtol
    evals, U = torch.linalg.eigh(gram(J))
    sigma = evals.clamp_min(0).sqrt().flip(0)
    U = U.flip(1)
    rank = int((sigma > rtol * sigma[0]).sum()) if sigma[0] > 0 else 0
    k = min(vectors, rank)
    right = None
    if k:
        right = (U[:, :k].T.to(J.dtype) @ J) / sigma[:k, None].to(J.dtype)
        right = right.reshape(k, *(shape or (n,)))
    return Spectrum(sigma.cpu(), U, right, rtol, rank, "exact", m, n)


class Linearized:
    """f linearised at x0: batched J^T u (VJP of one saved forward pass) and J v (forward-mode JVP, or
    the VJP of the VJP: whichever runs, faster first). Use inside `math_attention()`: the fused attention
    kernels have neither forward-mode nor double-backward formulas."""

    def __init__(self, f: EmbedFn, x0: Tensor, mode: str = "auto"):
        if mode not in ("auto", "jvp", "double-vjp"):
            raise ProbeError(f"product mode {mode!r} is not one of auto, jvp, double-vjp")
        self.f1, self.x0, self.mode = _single(f), x0, mode
        self.y0, vjp_fn = torch.func.vjp(self.f1, x0)
        self.m = self.y0.numel()
        self._jt = torch.func.vmap(lambda u: vjp_fn(u)[0])
        self._j = None
        self.products = 0

    def jt(self, U: Tensor) -> Tensor:
        """J^T u for each row u of U (b, m) -> (b, *shape)."""
        self.products += len(U)
        return self._jt(U.to(self.y0.device, self.y0.dtype))

    def j(self, V: Tensor) -> Tensor:
        """J v for each v in V (b, *shape) -> (b, m); the first product picks the way (see PRODUCT_ORDER)."""
        V = V.to(self.x0.device, self.x0.dtype)
        self.products += len(V)
        if self._j is not None:
            return self._j(V)
        if self.mode == "auto":
            order = PRODUCT_ORDER.get(self.x0.device.type, ("jvp", "double-vjp"))
        else:
            order = (self.mode,)
        errors = []
        for mode in order:
            try:
                product = self._jvp if mode == "jvp" else self._double_vjp()
                result = product(V)
            except (RuntimeError, NotImplementedError) as err:
                errors.append(f"{mode}: {str(err).splitlines()[0][:200]}")
                continue
            self._j, self.mode = product, mode
            return result
        raise ProbeError("J v products do not run through this model (" + "; ".join(errors) +
                         "); use the exact Jacobian instead")

    def _jvp(self, V: Tensor) -> Tensor:
        return torch.func.vmap(lambda v: torch.func.jvp(self.f1, (self.x0,), (v,))[1])(V)

    def _double_vjp(self) -> Callable[[Tensor], Tensor]:
        """u -> J^T u is linear, so its VJP with cotangent v is J v (double backward, no forward mode)."""
        zeros = torch.zeros(self.m, dtype=self.y0.dtype, device=self.y0.device)
        _, vjp2 = torch.func.vjp(lambda u: torch.func.vjp(self.f1, self.x0)[1](u)[0], zeros)
        return torch.func.vmap(lambda v: vjp2(v)[0])


def _orthonormalize(W: Tensor, Q: Tensor | None, drop: float = 1e-10) -> Tensor:
    """Columns of W made orthonormal and orthogonal to Q (twice, for stability); columns that were
    (nearly) inside span(Q) are dropped: the Krylov space is then invariant."""
    scale = float(W.norm(dim=0).max()) if W.numel() else 0.0
    for _ in range(2):
        if Q is not None:
            W = W - Q @ (Q.T @ W)
    Qw, R = torch.linalg.qr(W)
    return Qw[:, R.diagonal().abs() > drop * scale]


def _ritz(Q: Tensor, AQ: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Rayleigh-Ritz on span(Q) given AQ = A Q: eigenvalues (descending), their coefficient
    vectors in Q, and the residual norms ||A y - theta y|| of the top k Ritz pairs."""
    T = Q.T @ AQ
    theta, S = torch.linalg.eigh((T + T.T) / 2)
    theta, S = theta.flip(0), S.flip(1)
    top = S[:, :k]
    residual = (AQ @ top - (Q @ top) * theta[:k]).norm(dim=0)
    return theta, S, residual


@torch.no_grad()
def topk_spectrum(f: EmbedFn, x0: Tensor, k: int = 1, tol: float = 1e-3, block: int | None = None,
                  max_products: int | None = None, seed: int = 0, mode: str = "auto",
                  rtol: float | None = None, progress: Progress | None = None) -> Spectrum:
    """Top-k singular values/vectors of J from products only (J never formed): block Krylov
    (Lanczos with full reorthogonalisation) on the m x m operator J J^T, each step one batched VJP
    and one batched JVP. Keeps J^T q for every Krylov vector q (n floats each) to form V at the end.

    Stops when every top-k Ritz pair has residual ||J J^T y - theta y|| <= tol * sigma_1^2, which
    bounds each sigma_i^2 error by tol * sigma_1^2 (so sigma_1 is within ~tol/2, relative).
    block: vectors per step (default min(k, 8)); max_products caps the work (default 4 m). The
    numerical rank (tolerance rtol * sigma_1) is known only when the Krylov space reached all m dims.
    `progress` hears ("krylov", products so far, max_products, {sigma_1, residual})."""
    y0 = _check_point(f, x0)
    m = y0.numel()
    if not 1 <= k <= m:
        raise ProbeError(f"k must be between 1 and the embedding size {m}, got {k}")
    if not 0 < tol < 1:
        raise ProbeError(f"tolerance must be in (0, 1), got {tol}")
    block = min(block or min(k, 8), m)
    max_products = max_products or 4 * m
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    Q = _orthonormalize(torch.randn(m, block, generator=gen, dtype=torch.float64), None)
    Qall, AQall, JTQall = Q[:, :0], Q[:, :0], []
    with math_attention():
        lin = Linearized(f, x0, mode)
        while True:
            JTQ = lin.jt(Q.T)
            AQ = lin.j(JTQ).double().T.cpu()
            Qall, AQall = torch.cat([Qall, Q], 1), torch.cat([AQall, AQ], 1)
            JTQall.append(JTQ.flatten(1))
            kk = min(k, Qall.shape[1])
            theta, S, residual = _ritz(Qall, AQall, kk)
            relative = float(residual.max() / theta[0]) if theta[0] > 0 else 0.0
            check(progress, "krylov", lin.products, max_products,
                  {"sigma_1": float(theta[0].clamp_min(0).sqrt()), "residual": relative})
            converged = kk == k and relative <= tol
            complete = Qall.shape[1] >= m
            if converged or complete or lin.products >= max_products:
                break
            Q = _orthonormalize(AQ, Qall)[:, :block]
            if Q.shape[1] == 0:  # the Krylov space is invariant: its Ritz values are exact
                converged = kk == k
                break
    all_sigma = theta.clamp_min(0).sqrt()
    sigma, Sk = all_sigma[:kk], S[:, :kk]
    JTQall = torch.cat(JTQall)
    right = (Sk.T.to(JTQall) @ JTQall) / sigma.clamp_min(1e-300)[:, None].to(JTQall)
    rtol = default_rtol(m, y0.dtype) if rtol is None else rtol
    rank = int((all_sigma > rtol * all_sigma[0]).sum()) if complete else None
    info = {"products": lin.products, "krylov_dim": Qall.shape[1], "block": block, "tol": tol,
            "converged": converged, "product_mode": lin.mode, "max_residual": relative,
            "seconds": time.perf_counter() - start}
    return Spectrum(sigma, Qall @ Sk, right.reshape(-1, *x0.shape), rtol, rank, "topk", m, x0.numel(), info)


# --- Directions ---------------------------------------------------------------------------------


def unit_rows(V: Tensor) -> Tensor:
    """Each direction (first dim) scaled to unit L2 norm over all its elements."""
    norms = V.flatten(1).norm(dim=1)
    if not torch.isfinite(norms).all() or (norms == 0).any():
        raise ProbeError("a direction is zero or not finite and cannot be normalised")
    return V / norms.view(-1, *([1] * (V.dim() - 1)))


def gaussian_directions(shape: tuple[int, ...], count: int, seed: int = 0,
                        dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Tensor:
    """`count` random Gaussian unit directions (count, *shape), reproducible from the seed."""
    gen = torch.Generator().manual_seed(seed)
    return unit_rows(torch.randn(count, *shape, generator=gen, dtype=torch.float64)).to(device, dtype)


def nullspace_directions(J: Tensor, spectrum: Spectrum, count: int, seed: int = 0,
                         shape: tuple[int, ...] | None = None) -> Tensor:
    """`count` random Gaussian directions with their row-space part of J removed (twice, in float64),
    unit-normalised: to first order they do not change the embedding."""
    if spectrum.method != "exact" or spectrum.left is None:
        raise ProbeError("null-space directions need the exact spectrum (all left singular vectors)")
    r = spectrum.numerical_rank or 0
    U = spectrum.left[:, :r].to(J.device)
    inv_sq = spectrum.singular_values[:r].to(J.device) ** -2
    G = gaussian_directions((J.shape[1],), count, seed, torch.float64, J.device)
    for _ in range(2):
        G = G - _jtmul(J, U @ (inv_sq[:, None] * (U.T @ _jmul(J, G))))
    return unit_rows(G).to(J.dtype).reshape(count, *(shape or (J.shape[1],)))


def displacement_direction(delta: Tensor, shape: tuple[int, ...]) -> Tensor:
    """An actual displacement (e.g. matched image minus original, in the probed space) as one unit
    direction (1, *shape)."""
    if delta.numel() != math.prod(shape):
        raise ProbeError(f"displacement has {delta.numel()} elements, the input space {math.prod(shape)}")
    return unit_rows(delta.reshape(1, *shape))


def optimized_directions(f: EmbedFn, x0: Tensor, eps: float, count: int = 8, steps: int = 20,
                         seed: int = 0, progress: Progress | None = None) -> tuple[Tensor, Tensor]:
    """Unit directions maximising ||f(x0 + eps v) - f(x0)|| for the fixed step eps, from `count`
    seeded Gaussian starts. Each step moves v to the normalised gradient of that squared change
    (for a linear map exactly a power iteration on J^T J). Returns the best directions (count, *shape)
    and their estimates ||f(x0 + eps v) - f(x0)|| / eps, lower bounds on the local Lipschitz constant."""
    if not (eps > 0 and math.isfinite(eps)):
        raise ProbeError(f"optimisation step eps must be a positive number, got {eps}")
    if count < 1 or steps < 0:
        raise ProbeError(f"need count >= 1 and steps >= 0, got count {count}, steps {steps}")
    f0 = _check_point(f, x0).detach()
    V = gaussian_directions(tuple(x0.shape), count, seed, x0.dtype, x0.device)
    best, best_value = V.clone(), torch.zeros(count, dtype=torch.float64, device=x0.device)
    for step in range(steps + 1):
        check(progress, "optimize directions", step, steps + 1)
        Vg = V.detach().requires_grad_(True)
        with torch.enable_grad():
            change = (f(x0 + eps * Vg) - f0).pow(2).sum(dim=1)
            (grad,) = torch.autograd.grad(change.sum(), Vg)
        value = change.detach().double().sqrt() / eps
        better = value > best_value
        best[better], best_value[better] = V[better], value[better]
        if (grad.flatten(1).norm(dim=1) == 0).any():
            break
        V = unit_rows(grad)
    return best, best_value.cpu()


# --- Directional Lipschitz estimates ------------------------------------------------------------


@dataclass
class LipschitzEstimates:
    """Per direction (rows) and step (columns): L = ||f(x0 + eps v) - f(x0)|| / eps, and the
    first-order error ||f(x0 + eps v) - f(x0) - eps J v||; derivative_norm = ||J v|| (eps -> 0)."""

    eps: list[float]
    estimates: Tensor            # (d, e) float64
    first_order_error: Tensor    # (d, e) float64
    derivative_norm: Tensor      # (d,) float64

    def to_dict(self) -> dict:
        return {"estimates": self.estimates.tolist(), "first_order_error": self.first_order_error.tolist(),
                "derivative_norm": self.derivative_norm.tolist()}


def check_eps(eps: list[float]) -> list[float]:
    eps = [float(e) for e in eps]
    if not eps or not all(e > 0 and math.isfinite(e) for e in eps):
        raise ProbeError(f"eps grid must be positive finite numbers, got {eps}")
    return eps


@torch.no_grad()
def directional_derivatives(f: EmbedFn, x0: Tensor, directions: Tensor, jacobian_matrix: Tensor | None = None,
                            batch_size: int = 16) -> Tensor:
    """J v for each direction (d, *shape) -> (d, m) float64: from J when given, else from JVPs."""
    if jacobian_matrix is not None:
        return _jmul(jacobian_matrix, directions.flatten(1)).T.cpu()
    with math_attention():
        lin = Linearized(f, x0)
        return torch.cat([lin.j(directions[s:s + batch_size]).double().cpu()
                          for s in range(0, len(directions), batch_size)])


def lipschitz_estimates(f: EmbedFn, x0: Tensor, directions: Tensor, eps: list[float],
                        jacobian_matrix: Tensor | None = None, batch_size: int = 16,
                        progress: Progress | None = None) -> LipschitzEstimates:
    """Directional Lipschitz estimates along unit `directions` (d, *shape) over the eps grid, batched.

    Differences are taken in float64 arithmetic, but a float32 map rounds its outputs to ~1e-7
    relative, so below eps ~ 1e-3 * ||f|| / sigma its estimates are rounding noise: probe a float64
    map (`embedding_map(..., dtype=torch.float64)`) for small eps."""
    eps = check_eps(eps)
    if directions.dim() != x0.dim() + 1 or directions.shape[1:] != x0.shape:
        raise ProbeError(f"directions must have shape (d, {', '.join(map(str, x0.shape))}), "
                         f"got {tuple(directions.shape)}")
    directions = unit_rows(directions.to(x0.device, x0.dtype))
    f0 = _check_point(f, x0).double()
    jv = directional_derivatives(f, x0, directions, jacobian_matrix, batch_size).to(f0.device)
    d, e = len(directions), len(eps)
    pairs = [(i, j) for i in range(d) for j in range(e)]
    change = torch.empty(d, e, f0.numel(), dtype=torch.float64, device=f0.device)
    steps = torch.tensor(eps, dtype=torch.float64, device=f0.device)
    for s in range(0, len(pairs), batch_size):
        check(progress, "lipschitz", s, len(pairs))
        idx = pairs[s:s + batch_size]
        rows = torch.tensor([i for i, _ in idx], device=x0.device)
        cols = torch.tensor([j for _, j in idx], device=x0.device)
        step = steps[cols].to(x0.dtype).view(-1, *([1] * x0.dim()))
        with torch.no_grad():
            out = f(x0 + step * directions[rows]).double()
        change[rows, cols] = out - f0
    check(progress, "lipschitz", len(pairs), len(pairs))
    estimates = change.norm(dim=2) / steps
    first_order = (change - steps[None, :, None] * jv[:, None, :]).norm(dim=2)
    return LipschitzEstimates(eps, estimates.cpu(), first_order.cpu(), jv.norm(dim=1).cpu())


# --- The Fig 3 / Fig 4 study --------------------------------------------------------------------

FAMILIES = ("singular", "gaussian", "nullspace", "optimized")


@dataclass
class LipschitzStudy:
    """Spectrum of J at the image and Lipschitz estimates per direction family (Figs 3 and 4)."""

    spectrum: Spectrum
    families: dict[str, LipschitzEstimates]
    optimized_values: Tensor | None       # the optimiser's own estimates at its step
    frobenius_over_sqrt_n: float          # expected estimate along random Gaussian directions


def lipschitz_study(emap: EmbeddingMap, families: tuple[str, ...] = FAMILIES, samples: int = 8,
                    eps: list[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0), seed: int = 0,
                    estimate_map: EmbeddingMap | None = None, optimize_eps: float = 0.1,
                    optimize_steps: int = 20, chunk_size: int | None = None, displacement: Tensor | None = None,
                    progress: Progress | None = None) -> LipschitzStudy:
    """Exact J at the image, then `samples` directions of each family and their estimates.

    J, its spectrum and the optimised directions use `emap`; the estimates use `estimate_map` when
    given (a float64 copy, so small eps is not rounding noise). `displacement` (e.g. a matched image
    minus the original, in the probed space) adds its direction as the family `displacement`."""
    unknown = [name for name in families if name not in FAMILIES]
    if unknown or not families:
        raise ProbeError(f"unknown direction families {unknown or families}; choose from {', '.join(FAMILIES)}")
    if samples < 1:
        raise ProbeError(f"samples must be >= 1, got {samples}")
    eps = check_eps(list(eps))
    shape = tuple(emap.x0.shape)
    J = jacobian(emap.f, emap.x0, chunk_size=chunk_size, progress=progress)
    if not torch.isfinite(J).all():
        raise ProbeError("the Jacobian at this image is not finite")
    spectrum = exact_spectrum(J, shape, vectors=samples)
    if "singular" in families and spectrum.right is None:
        raise ProbeError("the Jacobian is zero at this image: there are no singular directions")
    target = estimate_map or emap
    optimized_values = None
    chosen: dict[str, Tensor] = {}
    for name in families:
        if name == "singular":
            chosen[name] = spectrum.right
        elif name == "gaussian":
            chosen[name] = gaussian_directions(shape, samples, seed, emap.x0.dtype, emap.x0.device)
        elif name == "nullspace":
            chosen[name] = nullspace_directions(J, spectrum, samples, seed + 1, shape)
        else:
            chosen[name], optimized_values = optimized_directions(emap.f, emap.x0, optimize_eps, samples,
                                                                  optimize_steps, seed + 2, progress)
    if displacement is not None:
        chosen["displacement"] = displacement_direction(displacement.to(emap.x0), shape)
    results = {name: lipschitz_estimates(target.f, target.x0, V.to(target.x0.dtype), eps, J,
                                         progress=within(progress, name))
               for name, V in chosen.items()}
    frob = float(spectrum.singular_values.pow(2).sum().sqrt()) / math.sqrt(spectrum.n)
    return LipschitzStudy(spectrum, results, optimized_values, frob)
