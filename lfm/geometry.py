"""Geometry: masked similarity Procrustes, orthographic camera fit, 2D normalisation.

Conventions (used everywhere in ``lfm``)
-----------------------------------------
* Points are rows: ``(B, N, 3)`` (or ``(B, N, 2)``), like pytorch3d and roma, not C3DPO's ``(B, 3, N)``.
* Rotations act on the right: ``aligned = s * src @ R + t``, which is the paper's ``S_c R`` (Sec. 3.6).
* ``mask: (B, N)``, bool or float; ``True``/``1`` = the keypoint exists and is visible. The mask enters the
  alignment itself (weighted centroids and weighted covariance), not only the final average.

The similarity alignment is Umeyama's weighted least-squares solution of

    min_{s, R, t}  sum_i w_i || s x_i R + t - y_i ||^2 ,

that is ``U, S, V^T = svd(X_c^T W Y_c)``, ``R = U D V^T`` with ``D = diag(1, 1, det(U V^T))`` when reflections
are forbidden (SO(3)) and ``D = I`` when they are allowed (O(3): the paper's ``R = U V^T`` has no determinant
correction), ``s = tr(S D) / sum_i w_i ||x_c,i||^2`` and ``t = mu_y - s mu_x R``. Without autograd the same
optimum is found through Horn's quaternion matrix (several times cheaper than a batched 3 x 3 SVD, see
``_best_rotation_horn``); with autograd through the alignment the SVD is used.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = [
    "Alignment",
    "OrthographicFit",
    "Normalisation",
    "similarity_align",
    "fit_orthographic_camera",
    "normalize_2d",
    "denormalize_2d",
    "masked_mean",
]


class Alignment(NamedTuple):
    """Result of :func:`similarity_align`; ``aligned = s[:, None, None] * src @ R + t[:, None, :]``."""

    aligned: torch.Tensor  # (B, N, 3) src mapped onto dst
    R: torch.Tensor  # (B, 3, 3) rotation (det = +1, or +-1 when reflections are allowed), acts on the right
    s: torch.Tensor  # (B,) scale (1 when scale=False)
    t: torch.Tensor  # (B, 3) translation


class OrthographicFit(NamedTuple):
    """Result of :func:`fit_orthographic_camera`.

    ``camera3d = s * shape3d @ R + t`` projects (drop z) onto the 2D keypoints; ``camera3d_mirror`` is the depth
    mirror (z negated about the centroid depth) that projects onto exactly the same 2D points: under orthographic
    projection the two cannot be told apart from 2D alone.
    """

    R: torch.Tensor  # (B, 3, 3) proper rotation canonical -> camera, acts on the right
    s: torch.Tensor  # (B,) scale
    t: torch.Tensor  # (B, 3) translation; t_z = 0, so the visible centroid sits at depth 0
    camera3d: torch.Tensor  # (B, N, 3)
    camera3d_mirror: torch.Tensor  # (B, N, 3) the depth-flipped alternative
    residual: torch.Tensor  # (B,) RMS 2D reprojection error over visible points, in input units


class Normalisation(NamedTuple):
    """Result of :func:`normalize_2d`; ``points = normalised * scale + center`` inverts it."""

    points: torch.Tensor  # (B, N, 2) centred on the visible mean, visible points within [-1, 1]
    center: torch.Tensor  # (B, 2)
    scale: torch.Tensor  # (B,)


def _check_points(name: str, x: torch.Tensor, dims: tuple[int, ...] = (3,)) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; convert with torch.as_tensor.")
    if x.dim() != 3 or x.shape[-1] not in dims:
        want = " or ".join(f"(B, N, {d})" for d in dims)
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {want}.")


def _weights(mask: torch.Tensor | None, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """(B, N) float weights in the dtype of ``like`` (all ones when ``mask`` is None)."""
    B, N = like.shape[:2]
    if mask is None:
        return like.new_ones(B, N)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({B}, {N}), got {type(mask).__name__}.")
    if tuple(mask.shape) != (B, N):
        raise ValueError(
            f"{name} has shape {tuple(mask.shape)} but the points have shape {tuple(like.shape)}; "
            f"pass one {name} entry per keypoint, shape ({B}, {N})."
        )
    w = mask.to(device=like.device, dtype=like.dtype)
    if not mask.dtype == torch.bool and bool((w < 0).any()):
        raise ValueError(f"{name} has negative weights; use a bool mask or weights >= 0.")
    return w


def _compute_dtype(*xs: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (never half: a 3x3 SVD in bf16 is meaningless)."""
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def masked_mean(x: torch.Tensor, w: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """Weighted mean of ``x`` over ``dim`` with weights ``w`` (broadcast on trailing dims); 0 where sum(w) = 0.
    Entries with zero weight never contribute, even when they hold NaN or inf."""
    wx = w.unsqueeze(-1) if w.dim() < x.dim() else w
    return (torch.where(wx > 0, x, 0.0) * wx).sum(dim) / wx.sum(dim).clamp_min(eps)


def _best_rotation_svd(cov: torch.Tensor, allow_reflection: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """argmax_R tr(R^T cov) over SO(3) (or O(3)) by SVD: ``R = U D V^T``; returns ``(R, tr(R^T cov))``."""
    U, S, Vh = torch.linalg.svd(cov)  # cov = U diag(S) Vh
    d = torch.ones_like(S)  # (B, 3) diagonal of D
    if not allow_reflection:  # det(U V^T) = -1 -> flip the weakest axis
        d[:, -1] = torch.where(torch.linalg.det(U @ Vh).detach() < 0, -1.0, 1.0)
    return (U * d[:, None, :]) @ Vh, (S * d).sum(-1)


def _best_rotation_horn(cov: torch.Tensor, allow_reflection: bool, max_iter: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The same optimum as :func:`_best_rotation_svd` without an SVD (Horn 1987, quaternion form).

    ``tr(R^T M)`` over rotations is maximised by the unit quaternion ``q`` of the largest eigenvalue ``lam`` of
    Horn's symmetric, traceless 4 x 4 matrix ``N(M)``, and ``lam = tr(R^T M)``. ``lam`` is the largest root of the
    characteristic polynomial ``x^4 - tr(N^2)/2 x^2 - tr(N^3)/3 x + det N`` (Newton's identities), found by Newton's
    method from the upper bound sqrt(3) ||M||_F, which converges monotonically from above; ``q`` is the largest
    column of ``((lam + delta) I - N)^-1`` (shifted inverse iteration from all four basis vectors, then one more
    step with the same inverse). When the
    top eigenvalue is repeated (collinear points, two points) that column lies in the eigenspace, so the rotation
    is still an optimum. O(3): if det M < 0 the best orthogonal matrix is ``-R(-M)``. Runs in float64 on the
    (B, 4, 4) matrices only: a batched 4 x 4 LU is several times cheaper than a batched 3 x 3 SVD.
    """
    M = cov.detach().double()
    norm = M.flatten(1).norm(dim=-1).clamp_min(1e-300)[:, None, None]
    M = M / norm  # scale-free: eigenvalues of N within [-sqrt(3), sqrt(3)]
    flip = torch.zeros(M.shape[0], dtype=torch.bool, device=M.device)
    if allow_reflection:
        flip = torch.linalg.det(M) < 0
        M = torch.where(flip[:, None, None], -M, M)
    xx, xy, xz, yx, yy, yz, zx, zy, zz = M.flatten(1).unbind(-1)  # M[a, b] = sum_i w_i x_a y_b
    N = torch.stack([
        torch.stack([xx + yy + zz, yz - zy, zx - xz, xy - yx], -1),
        torch.stack([yz - zy, xx - yy - zz, xy + yx, zx + xz], -1),
        torch.stack([zx - xz, xy + yx, yy - xx - zz, yz + zy], -1),
        torch.stack([xy - yx, zx + xz, yz + zy, zz - xx - yy], -1),
    ], 1)  # (B, 4, 4)
    N2 = N @ N
    c2 = -0.5 * N2.diagonal(dim1=1, dim2=2).sum(-1)  # (B,)
    c1 = -(N2 * N).sum((1, 2)) / 3  # tr(N^3) / 3, N symmetric
    c0 = torch.linalg.det(N)
    lam = torch.full_like(c0, 3**0.5 + 1e-6)
    for it in range(max_iter):
        p = ((lam * lam + c2) * lam + c1) * lam + c0
        dp = (4 * lam * lam + 2 * c2) * lam + c1
        step = p / torch.where(dp > 0, dp, torch.ones_like(dp))
        lam = lam - step
        if it % 8 == 7 and float(step.abs().max()) < 1e-13:  # quadratic convergence; linear at repeated roots
            break
    eye = torch.eye(4, dtype=M.dtype, device=M.device)
    inv = torch.linalg.inv((lam + 1e-9)[:, None, None] * eye - N)  # (B, 4, 4), dominated by q q^T
    col = inv.norm(dim=1).argmax(-1)  # (B,)
    q = torch.gather(inv, 2, col[:, None, None].expand(-1, 4, 1))  # (B, 4, 1)
    q = inv @ (q / q.norm(dim=1, keepdim=True))  # a second step: error (delta / gap)^2 instead of delta / gap
    q = q[..., 0]
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    R = torch.stack([  # rows convention: the transpose of Horn's column-convention rotation
        torch.stack([w * w + x * x - y * y - z * z, 2 * (x * y + w * z), 2 * (x * z - w * y)], -1),
        torch.stack([2 * (x * y - w * z), w * w - x * x + y * y - z * z, 2 * (y * z + w * x)], -1),
        torch.stack([2 * (x * z + w * y), 2 * (y * z - w * x), w * w - x * x - y * y + z * z], -1),
    ], 1)
    R = torch.where(flip[:, None, None], -R, R).to(cov.dtype)
    return R, (R * cov.detach()).sum((1, 2))


def _weighted_moments(xs, ys, sw, wsum, eps):
    """From sqrt(w)-weighted points ``xs, ys (B, N, 3)`` (overwritten: centred in place): centroids ``(B, 1, 3)``, ``X_c^T W Y_c (B, 3, 3)`` and
    ``sum_i w_i ||x_i - mu_x||^2 (B,)``. The points are centred exactly (``xs - sqrt(w) mu``, one fused pass each):
    moments corrected afterwards lose float32 precision to cancellation far from the origin. GEMMs run with N as
    the long, contiguous dimension (fast on CPU)."""
    swn = (sw / wsum.clamp_min(eps)[:, None])[:, None, :]  # (B, 1, N)
    mu_x, mu_y = swn @ xs, swn @ ys  # (B, 1, 3)
    sw3 = sw[..., None]  # (B, N, 1)
    xc = xs.addcmul_(sw3, mu_x, value=-1.0).transpose(1, 2)  # (B, 3, N) = (sqrt(w) (x - mu_x))^T, in place
    yc = ys.addcmul_(sw3, mu_y, value=-1.0)  # (B, N, 3)
    cov = xc @ yc  # (B, 3, 3)
    var_x = xc.square().sum((1, 2))  # (B,)
    return mu_x, mu_y, cov, var_x


def similarity_align(
    src: torch.Tensor,
    dst: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: bool = True,
    allow_reflection: bool = False,
    detach: bool = False,
    eps: float = 1e-9,
) -> Alignment:
    """Best similarity transform of ``src`` onto ``dst`` under a mask (weighted Umeyama / Kabsch).

    Args:
        src: ``(B, N, 3)`` points to move (e.g. the canonical prediction ``S_c``).
        dst: ``(B, N, 3)`` target points (e.g. the ground truth ``S_r``).
        mask: ``(B, N)`` bool or non-negative float weights; ``None`` = all points valid.
        scale: fit the scale ``s`` (else ``s = 1``: a rigid alignment).
        allow_reflection: ``False`` forces ``det(R) = +1`` (SO(3)); ``True`` allows ``det(R) = -1`` (O(3)), the
            paper's ``R = U V^T``.
        detach: compute ``(R, s, t)`` from detached inputs, so gradients flow only through ``src`` in
            ``aligned = s * src @ R + t`` (for a squared loss this equals the gradient through the SVD; see
            :func:`lfm.losses.procrustes_mse`).
        eps: clamp for denominators.

    Returns:
        :class:`Alignment` ``(aligned, R, s, t)`` with ``aligned = s * src @ R + t`` (row vectors).
        Computed in float64 when an input is float64, else in float32, also under autocast.

    Degenerate samples get a documented fallback and finite output: with fewer than 2 valid points, or a ``src``
    whose valid points all coincide, ``R = I``, ``s = 1`` and ``t = mu_dst - mu_src`` (a pure translation of the
    valid centroid; with 0 valid points both centroids are 0 and nothing moves). Two valid points or collinear
    points leave the rotation about the line undetermined: the SVD's choice is returned, which is one of the
    (equally good) optima. With ``detach=False`` the gradient runs through the SVD, which is NaN on symmetric or
    degenerate point sets; losses use ``detach=True``.
    """
    _check_points("src", src)
    _check_points("dst", dst)
    if src.shape != dst.shape:
        raise ValueError(f"src has shape {tuple(src.shape)} but dst has shape {tuple(dst.shape)}; they must match.")
    dtype = _compute_dtype(src, dst)
    with torch.autocast(device_type=src.device.type, enabled=False):
        x_full = src.to(dtype)
        x, y = (x_full.detach(), dst.to(dtype).detach()) if detach else (x_full, dst.to(dtype))
        w = _weights(mask, x)  # (B, N)
        valid = w > 0
        wsum = w.sum(-1)  # (B,)
        # Moments from sqrt(w)-weighted points (the cost is memory traffic over (B, N, 3), not FLOPs).
        sw = w if mask is None or mask.dtype == torch.bool else w.sqrt()  # (B, N); sqrt(w) = w for 0/1
        mu_x, mu_y, cov, var_x = _weighted_moments(x * sw[..., None], y * sw[..., None], sw, wsum, eps)
        if mask is not None and not bool(torch.isfinite(cov).all() and torch.isfinite(var_x).all()):
            # NaN/inf in a hidden row (0 * NaN = NaN): redo with those rows zeroed (only then pay for the copies)
            hidden = ~valid[..., None]
            xs, ys = (x * sw[..., None]).masked_fill_(hidden, 0.0), (y * sw[..., None]).masked_fill_(hidden, 0.0)
            mu_x, mu_y, cov, var_x = _weighted_moments(xs, ys, sw, wsum, eps)

        if detach or not (torch.is_grad_enabled() and (src.requires_grad or dst.requires_grad)):
            R, trace = _best_rotation_horn(cov, allow_reflection)  # fast, no autograd needed
        else:
            R, trace = _best_rotation_svd(cov, allow_reflection)  # differentiable through the SVD
        s = trace / var_x.clamp_min(eps) if scale else torch.ones_like(var_x)  # (B,); trace = tr(R^T cov)

        # Fallback: < 2 valid points, or all valid src points coincide (relative to their magnitude).
        ms_x = var_x + wsum * mu_x.square().sum((1, 2))  # (B,) = sum_i w_i ||x_i||^2
        collapsed = var_x <= (16 * torch.finfo(dtype).eps) ** 2 * ms_x  # valid points coincide up to rounding
        degenerate = (valid.sum(-1) < 2) | collapsed  # (B,); torch.where avoids a host sync on CUDA
        eye = torch.eye(3, dtype=dtype, device=x.device).expand_as(R)
        R = torch.where(degenerate[:, None, None], eye, R)
        s = torch.where(degenerate, torch.ones_like(s), s)
        t = mu_y - s[:, None, None] * (mu_x @ R)  # (B, 1, 3)
        # aligned = s src R + t, (B, N, 3); computed as (s R)^T src^T: CPU GEMMs are ~2x faster with N last
        sR = s[:, None, None] * R
        aligned = torch.baddbmm(t.transpose(1, 2), sR.transpose(1, 2), x_full.transpose(1, 2)).transpose(1, 2)
        aligned = aligned.contiguous()  # gradient flows via src only when detach=True
        t = t[:, 0]
    return Alignment(aligned, R, s, t)


def fit_orthographic_camera(
    points2d: torch.Tensor,
    shape3d: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    n_iter: int = 100,
    eps: float = 1e-9,
    tol: float = 0.0,
) -> OrthographicFit:
    """Scaled rotation that best projects a 3D shape onto 2D keypoints under orthographic projection.

    Solves ``min_{s, R, t} sum_i w_i || (s x_i R + t)_{xy} - p_i ||^2`` over proper rotations ``R``: it puts a
    canonical-frame prediction into the camera frame when no ground truth is available (``lfm.lift``).

    Because only two columns of ``R`` are observed this is the *unbalanced* orthogonal Procrustes problem (no
    closed form: ``||X Q||`` depends on ``Q``). It is solved by (1) the affine least-squares camera
    ``M = argmin ||X_c M - P_c||_W`` (3 x 2) projected onto a scaled rotation (polar factor), then (2) ``n_iter``
    depth-augmentation steps: the 2D targets get the current depths as a third column, and a balanced 3D
    similarity fit (:func:`similarity_align`) is solved; each step can only lower the 2D error. Noise-free
    projections of a non-planar shape are recovered exactly by step (1).

    Depth sign: the depth mirror of ``camera3d`` (z negated about its centroid) projects onto the same 2D points.
    Which of the two is right cannot be seen under orthographic projection; both are returned
    (``camera3d`` corresponds to ``shape3d`` itself, ``camera3d_mirror`` to its mirror image).

    Args:
        points2d: ``(B, N, 2)`` observed 2D keypoints.
        shape3d: ``(B, N, 3)`` 3D shape (any frame, e.g. the model's canonical output).
        mask: ``(B, N)`` bool or float weights of the visible keypoints.
        n_iter: refinement steps (0 = affine initialisation only); the error converges linearly, 100 steps
            reach the optimum to about 1e-6 (relative) on typical shapes.
        tol: stop early once a step changes ``s R`` by at most ``tol`` relative to ``s`` for every sample
            (checked every 5 steps; 0 = always ``n_iter`` steps).
    """
    _check_points("points2d", points2d, dims=(2,))
    _check_points("shape3d", shape3d)
    if points2d.shape[:2] != shape3d.shape[:2]:
        raise ValueError(
            f"points2d has shape {tuple(points2d.shape)} but shape3d has shape {tuple(shape3d.shape)}; "
            "they need the same (B, N)."
        )
    dtype = _compute_dtype(points2d, shape3d)
    with torch.autocast(device_type=shape3d.device.type, enabled=False):
        w = _weights(mask, shape3d.to(dtype))
        valid = (w > 0)[..., None]
        p = torch.where(valid, points2d.to(dtype), 0.0)
        x = torch.where(valid, shape3d.to(dtype), 0.0)
        mu_p, mu_x = masked_mean(p, w, eps=eps), masked_mean(x, w, eps=eps)  # (B, 2), (B, 3)
        pc, xc = torch.where(valid, p - mu_p[:, None], 0.0), torch.where(valid, x - mu_x[:, None], 0.0)
        # (1) affine camera M = (X^T W X)^+ X^T W P, projected onto s * (first two columns of a rotation)
        xtw = (w[..., None] * xc).transpose(1, 2)  # (B, 3, N)
        M = torch.linalg.pinv(xtw @ xc) @ (xtw @ pc)  # (B, 3, 2)
        U, S, Vh = torch.linalg.svd(M, full_matrices=False)  # U (B, 3, 2), S (B, 2), Vh (B, 2, 2)
        Q = U @ Vh  # (B, 3, 2), orthonormal columns
        R = torch.cat([Q, torch.linalg.cross(Q[..., 0], Q[..., 1], dim=-1)[..., None]], dim=-1)  # det = +1
        s = S.mean(-1)  # (B,)
        # (2) depth augmentation: fit [P, current depth] in 3D; the 2D error never increases
        for it in range(n_iter):
            depth = s[:, None] * (xc @ R[..., 2:]).squeeze(-1)  # (B, N)
            fit = similarity_align(xc, torch.cat([pc, depth[..., None]], -1), w, eps=eps)
            step = (fit.s[:, None, None] * fit.R - s[:, None, None] * R).abs().amax()
            R, s = fit.R, fit.s
            if tol > 0 and it % 5 == 4 and float(step) <= tol * float(s.abs().amax().clamp_min(eps)):
                break  # converged for every sample: further steps change s R by less than tol (relative)
        t = torch.cat([mu_p, torch.zeros_like(mu_p[:, :1])], -1) - s[:, None] * (mu_x[:, None] @ R).squeeze(1)
        cam = s[:, None, None] * (shape3d.to(dtype) @ R) + t[:, None]  # (B, N, 3), visible centroid at depth 0
        mirror = cam * cam.new_tensor([1.0, 1.0, -1.0])
        err2 = torch.where(valid[..., 0], (cam[..., :2] - p).square().sum(-1), 0.0)  # (B, N)
        residual = torch.sqrt(masked_mean(err2, w, eps=eps))
    return OrthographicFit(R, s, t, cam, mirror, residual)


def normalize_2d(points2d: torch.Tensor, mask: torch.Tensor | None = None, *, eps: float = 1e-8) -> Normalisation:
    """Paper Eq. 3 and Sec. 3.2: centre on the mean of the *visible* keypoints, then scale into [-1, 1].

    The scale is the largest absolute coordinate of a visible keypoint after centring (one number for x and y,
    so the aspect ratio is kept). Invisible and padded keypoints are set to 0. The operation is idempotent and
    invertible for visible points: ``points2d = out.points * out.scale + out.center``.
    """
    _check_points("points2d", points2d, dims=(2,))
    w = _weights(mask, points2d)
    visible = w > 0
    points2d = torch.where(visible[..., None], points2d, 0.0)  # NaN/inf in hidden points must not leak
    center = masked_mean(points2d, w)  # (B, 2)
    centred = torch.where(visible[..., None], points2d - center[:, None], 0.0)
    scale = centred.abs().amax(dim=(1, 2)).clamp_min(eps)  # (B,)
    return Normalisation(centred / scale[:, None, None], center, scale)


def denormalize_2d(norm: Normalisation) -> torch.Tensor:
    """Inverse of :func:`normalize_2d` for the visible keypoints."""
    return norm.points * norm.scale[:, None, None] + norm.center[:, None]
