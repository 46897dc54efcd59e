"""Hand-written reference steps, straight from the papers and the official code (the sources each
rule module cites).

Each rule is one plain function over lists of tensors with its own list of state dicts
(one dict per parameter, created on first use).  The functions are written for float64
and are deliberately naive: one line per equation of the spec, no fusion, no foreach.
Nothing here is copied from an optimizer package.

Conventions shared by all functions:

* ``params``: list of tensors, updated in place (call under ``torch.no_grad()`` or on
  tensors that do not require grad).
* ``grads``: list of tensors or ``None`` (no gradient this step: the parameter and its
  state are left untouched).  Gradients are never mutated.
* ``states``: list of dicts, same length as ``params``; an empty dict means "first use".
  The state keys match the API contract so that they can be compared with the optimizer's
  ``state[p]`` directly.

Also: ``projection_view`` / ``project_radial`` implement the AdamP/SGDP projection test and
projection of the spec (step 4 of AdamP), for the composition tests of the ``*p`` rules.
"""

import math

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------
# Adai / AdaiW (official two-pass rule)
# ---------------------------------------------------------------------------------------
def adai_reference_step(params, grads, states, lr, betas=(0.1, 0.99), eps=1e-3,
                        weight_decay=0.0, decoupled=False):
    """One step of the official Adai (AdaiW when ``decoupled``) rule.

    ``lr`` and ``weight_decay`` may be scalars (one group) or lists with one value per
    parameter (several param groups: each parameter carries its group's values).  The global
    mean v̄ is ONE scalar over all elements of all parameters that have a gradient.

    Returns v̄ (a Python float) so tests can check the regime they are in.
    """
    n = len(params)
    lrs = lr if isinstance(lr, (list, tuple)) else [lr] * n
    wds = weight_decay if isinstance(weight_decay, (list, tuple)) else [weight_decay] * n
    beta0, beta2 = betas

    # ---- pass 1: over every parameter with a gradient ----
    total = 0.0        # Σ v / bc2
    count = 0          # number of elements
    effective_grads = [None] * n
    for i, (theta, g) in enumerate(zip(params, grads)):
        if g is None:
            continue
        st = states[i]
        if len(st) == 0:                                       # 1. state on first use
            st["step"] = 0
            st["exp_avg"] = torch.zeros_like(theta)
            st["exp_avg_sq"] = torch.zeros_like(theta)
            st["beta1_prod"] = torch.ones_like(theta)
        st["step"] += 1                                        # 2. per-parameter counter
        bc2 = 1.0 - beta2 ** st["step"]
        if wds[i] != 0 and not decoupled:                      # 3. coupled L2 (no mutation of g)
            g = g + wds[i] * theta
        elif wds[i] != 0 and decoupled:                        # 3. decoupled decay
            theta.mul_(1.0 - lrs[i] * wds[i])
        effective_grads[i] = g
        v = beta2 * st["exp_avg_sq"] + (1.0 - beta2) * g * g   # 4.
        st["exp_avg_sq"].copy_(v)
        total += (v / bc2).sum().item()                        # 5.
        count += v.numel()

    vbar = total / count                                       # global mean

    # ---- pass 2: per parameter ----
    for i, theta in enumerate(params):
        g = effective_grads[i]
        if g is None:
            continue
        st = states[i]
        bc2 = 1.0 - beta2 ** st["step"]
        v_hat = st["exp_avg_sq"] / bc2                                     # 6.
        beta1 = (1.0 - beta0 * v_hat / vbar).clamp(0.0, 1.0 - eps)         # 7.
        st["beta1_prod"].copy_(st["beta1_prod"] * beta1)                   # 8.
        bc1 = 1.0 - st["beta1_prod"]
        st["exp_avg"].copy_(beta1 * st["exp_avg"] + (1.0 - beta1) * g)     # 9.
        theta.sub_(lrs[i] * st["exp_avg"] / bc1)                           # 10.
    return vbar


# ---------------------------------------------------------------------------------------
# Root-free AdamW (Lin et al., ICML 2024)
# ---------------------------------------------------------------------------------------
def rfadamw_reference_step(params, grads, states, lr, betas, eps, weight_decay, batch_size,
                           bias_correction=False):
    """One step of root-free AdamW: preconditioner B·v (no square root), v₀ = 1/B,
    damping ``eps`` (λ) added to B·v/bc2, decoupled decay first."""
    beta1, beta2 = betas
    B = float(batch_size)
    for theta, g, st in zip(params, grads, states):
        if g is None:
            continue
        if len(st) == 0:
            st["step"] = 0
            st["exp_avg"] = torch.zeros_like(theta)
            st["exp_avg_sq"] = torch.full_like(theta, 1.0 / B)
        st["step"] += 1
        t = st["step"]
        theta.mul_(1.0 - lr * weight_decay)                                        # 1.
        st["exp_avg"].copy_(beta1 * st["exp_avg"] + (1.0 - beta1) * g)             # 2.
        st["exp_avg_sq"].copy_(beta2 * st["exp_avg_sq"] + (1.0 - beta2) * g * g)
        if bias_correction:                                                        # 3.
            bc1, bc2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
        else:
            bc1, bc2 = 1.0, 1.0
        precond = B * st["exp_avg_sq"] / bc2 + eps
        theta.sub_((lr / bc1) * st["exp_avg"] / precond)                          # 4.


# ---------------------------------------------------------------------------------------
# Root-free RMSProp (the paper's main diagonal method)
# ---------------------------------------------------------------------------------------
def rfrmsprop_reference_step(params, grads, states, lr, momentum, lr_cov, eps, weight_decay,
                             batch_size):
    """One step of root-free RMSProp: v ← αv + (1−α)g² (α = 1 − lr_cov, v₀ = 1/B),
    d = g/(B·v + λ) + wd·θ, buf ← momentum·buf + d (buf₀ = 0), θ ← θ − lr·buf."""
    alpha = 1.0 - lr_cov
    B = float(batch_size)
    for theta, g, st in zip(params, grads, states):
        if g is None:
            continue
        if len(st) == 0:
            st["exp_avg_sq"] = torch.full_like(theta, 1.0 / B)
            st["momentum_buffer"] = torch.zeros_like(theta)
        st["exp_avg_sq"].copy_(alpha * st["exp_avg_sq"] + (1.0 - alpha) * g * g)   # 1.
        d = g / (B * st["exp_avg_sq"] + eps) + weight_decay * theta                # 2.
        st["momentum_buffer"].copy_(momentum * st["momentum_buffer"] + d)          # 3.
        theta.sub_(lr * st["momentum_buffer"])


# ---------------------------------------------------------------------------------------
# The AdamP/SGDP projection stage (spec, AdamP step 4)
# ---------------------------------------------------------------------------------------
def _rows(x, view):
    return x.reshape(x.shape[0], -1) if view == "channel" else x.reshape(1, -1)


def projection_view(theta, grad, delta=0.1, eps=1e-8):
    """Which view the spec's test selects: 'channel', 'layer' or None (no projection).

    ``max |cos(g_row, θ_row)| < delta / sqrt(row_length)``, channel view first; only for
    tensors with ndim > 1.
    """
    if theta.ndim <= 1:
        return None
    for view in ("channel", "layer"):
        t, g = _rows(theta, view), _rows(grad, view)
        cos = F.cosine_similarity(g, t, dim=1, eps=eps).abs()
        if cos.max().item() < delta / math.sqrt(t.shape[1]):
            return view
    return None


def max_cosine(theta, grad, view, eps=1e-8):
    """max over rows of |cos(g_row, θ_row)| and the threshold's denominator sqrt(row_len)."""
    t, g = _rows(theta, view), _rows(grad, view)
    cos = F.cosine_similarity(g, t, dim=1, eps=eps).abs()
    return cos.max().item(), math.sqrt(t.shape[1])


def project_radial(theta, update, view, eps=1e-8):
    """``update_row − θ̂·⟨θ̂, update_row⟩`` with ``θ̂ = θ_row/(‖θ_row‖ + eps)`` (new tensor)."""
    if view is None:
        return update.clone()
    t, u = _rows(theta, view), _rows(update, view)
    unit = t / (t.norm(dim=1, keepdim=True) + eps)
    return (u - unit * (unit * u).sum(dim=1, keepdim=True)).reshape(update.shape)


def radial_fraction(theta, update, view):
    """max over rows of |⟨θ_row/‖θ_row‖, update_row⟩| / ‖update_row‖ (exact unit vector)."""
    t, u = _rows(theta, view), _rows(update, view)
    unit = t / t.norm(dim=1, keepdim=True)
    radial = (unit * u).sum(dim=1).abs()
    return (radial / u.norm(dim=1).clamp_min(1e-300)).max().item()
