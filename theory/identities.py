"""Exact identities on scale-invariant weights (catalogue §1, docs/theory.md): hold to float64 round-off.

Arrays: a leading replica axis (or any leading axes) is allowed everywhere; time is the last
axis. r_sq sequences have length T + 1 (r_0^2 ... r_T^2) for T measured inputs.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter


def update_scaling(c, homogeneity=1):
    """Factor by which a k-homogeneous update changes when w -> c w: c^{-k}.

    Statement: f(cw) = f(w) implies <w, grad f(w)> = 0 and grad f(cw) = grad f(w)/c
    (differentiate f(cw) = f(w) in c at c = 1, and in w). A rule homogeneous of degree k in
    the gradient therefore moves w by c^{-k} times as much (angle: c^{-(k+1)}).
    homogeneity = 1 gives the gradient scaling 1/c itself. Status: published (AdamP sec. 2;
    Arora, Li & Lyu 2019). Regime: exact (Adam: eps -> 0; root-free: damping -> 0).
    """
    return np.asarray(c, dtype=float) ** (-float(homogeneity))


def gd_norm_sq_next(r_sq, eta, grad_norm_sq, decay=0.0):
    """One GD step on a scale-invariant weight: r_{t+1}^2 = (1 - eta decay)^2 r_t^2 + eta^2 ||g_t||^2.

    Derivation: ||w - eta g||^2 = r^2 - 2 eta <w, g> + eta^2 ||g||^2 with <w, g> = 0; decoupled
    decay (or L2 without momentum) only rescales w. decay = 0 is the catalogue's identity.
    Status: published (AdamP). Regime: exact, any tangential g (true, stochastic or noise).
    """
    a = 1.0 - eta * decay
    return a * a * np.asarray(r_sq, dtype=float) + eta ** 2 * np.asarray(grad_norm_sq, dtype=float)


def heavy_ball_norm_sq(r0_sq, eta, beta, p_norms_sq, decay=0.0, initial_radial=0.0):
    """Whole sequence r_t^2 of heavy ball p_t = beta p_{t-1} + u_t, w_{t+1} = (1-eta decay) w_t - eta p_t.

    Statement (decay = 0, zero initial buffer; the AdamP lemma):
        r_{t+1}^2 = r_t^2 + eta^2 ||p_t||^2 + 2 eta^2 sum_{k<t} beta^{t-k} ||p_k||^2.
    Derivation: r_{t+1}^2 = a^2 r_t^2 - 2 a eta c_t + eta^2 ||p_t||^2 with c_t = <w_t, p_t>.
    As u_t is tangential, c_t = beta <w_t, p_{t-1}> = beta (a c_{t-1} - eta ||p_{t-1}||^2), and
    c_0 = beta <w_0, p_{-1}> (= initial_radial * beta; 0 for a zero buffer and for torch's
    first buffer = g). With a = 1: c_t = -eta sum_{k<t} beta^{t-k} ||p_k||^2, the lemma.
    Implemented as two first-order linear recursions (scipy lfilter): O(T), vectorised over
    leading axes.
    Inputs: p_norms_sq[..., t] = ||p_t||^2 for t = 0..T-1 (measured); decay = decoupled rate.
    Assumptions: every u_t is tangential to the CURRENT w_t (true gradients, noise, dampened
    or EMA inputs (1-beta) g_t alike). Not valid for Nesterov, coupled L2 inside the
    buffer, or Adam's preconditioned update (not tangential). Status: published (AdamP).
    """
    P = np.asarray(p_norms_sq, dtype=float)
    a = 1.0 - eta * decay
    lead = P.shape[:-1]
    c0 = beta * np.broadcast_to(np.asarray(initial_radial, dtype=float), lead)
    c = _first_order(c0, beta * a, -beta * eta, P)
    forcing = eta ** 2 * P - 2 * a * eta * c
    r0 = np.broadcast_to(np.asarray(r0_sq, dtype=float), lead)
    return _first_order(r0, a * a, 1.0, forcing, include_last=True)


def _first_order(y0, pole, gain, x, include_last=False):
    """y_0 = y0, y_{t+1} = pole y_t + gain x_t (O(T) via lfilter, along the last axis).

    Returns y_0..y_{T-1} (same length as x), or y_0..y_T with include_last.
    """
    y0 = np.asarray(y0, dtype=float)
    n = x.shape[-1] if include_last else x.shape[-1] - 1
    if n < 0:
        return np.empty(x.shape[:-1] + (0,))
    out = np.empty(x.shape[:-1] + (n + 1,))
    out[..., 0] = y0
    if n > 0:
        rest, _ = lfilter([gain], [1.0, -pole], x[..., :n], axis=-1, zi=(pole * y0)[..., None])
        out[..., 1:] = rest
    return out


def projected_norm_sq(r0_sq, eta, q_norms_sq, decay=0.0):
    """Whole sequence r_t^2 for a projected update q_t = P_perp(w_t) p_t (SGDP/AdamP stage).

    Statement: r_{t+1}^2 = (1 - eta decay)^2 r_t^2 + eta^2 ||q_t||^2 (decay = 0: the catalogue's
    r_{t+1}^2 = r_t^2 + eta^2 ||q_t||^2), whatever produced p_t (momentum, Adam's
    preconditioner, Nesterov). Derivation: q_t is orthogonal to w_t by construction.
    Decoupled decay is applied to w_t before the step (AdamP/SGDP order), which only
    rescales it. Status: published (AdamP). Regime: exact.
    """
    Q = np.asarray(q_norms_sq, dtype=float)
    a = 1.0 - eta * decay
    r0 = np.broadcast_to(np.asarray(r0_sq, dtype=float), Q.shape[:-1])
    return _first_order(r0, a * a, eta ** 2, Q, include_last=True)


# ---- Li & Arora (ICLR 2020): weight decay == exponential learning rate ---------------------

def exp_lr_alpha(eta, lam, momentum=0.0, root="larger"):
    """alpha: root of x^2 - (1 + gamma - eta lam) x + gamma = 0 (gamma = momentum).

    gamma = 0: alpha = 1 - eta lam. root='larger' (-> 1 as lam -> 0, slowest growth) or
    'smaller' (-> gamma); both give an exact equivalence. Real roots need
    (1 + gamma - eta lam)^2 >= 4 gamma, i.e. eta lam <= (1 - sqrt(gamma))^2 (2.6e-3 at
    gamma = .9); otherwise ValueError (no real exponential schedule).
    Status: published (Li & Arora 2020). Regime: exact.
    """
    g = float(momentum)
    if g == 0.0:
        return 1.0 - eta * lam
    s = 1.0 + g - eta * lam
    disc = s * s - 4.0 * g
    if disc < 0:
        raise ValueError("complex alpha: eta*lam > (1 - sqrt(momentum))^2")
    sq = np.sqrt(disc)
    return (s + sq) / 2.0 if root == "larger" else (s - sq) / 2.0


def exp_lr_schedule(eta, lam, steps, momentum=0.0, root="larger"):
    """Equivalent learning rates eta_t = eta alpha^{-2t-1}, t = 0..steps-1 (Li & Arora 2020).

    Statement (precise, derived and verified here to round-off). On a scale-invariant loss
    (any sequence of scale-invariant minibatch losses L_t), the run
      A: v_{t+1} = gamma v_t + grad L_t(w_t) + lam w_t,   w_{t+1} = w_t - eta v_{t+1}
         (torch SGD, coupled weight_decay=lam, momentum=gamma, dampening 0, constant lr)
    and the run without decay and with a per-step learning rate
      B: vt_{t+1} = gamma vt_t + grad L_t(x_t),            x_{t+1} = x_t - eta_t vt_{t+1}
         (torch SGD, momentum=gamma, lr eta_t set before step t) with eta_t = eta alpha^{-2t-1}
    satisfy, for all t,  x_t = alpha^{-t} w_t  (same directions; ||x_t|| = alpha^{-t} ||w_t||)
    and  vt_t = alpha^t (v_t - (1 - alpha)/(alpha eta) w_t),  provided the buffers start
    related the same way: vt_0 = v_0 - (1 - alpha)/(alpha eta) w_0 (exp_lr_state_map).
    Derivation: with w = alpha^t x, grad L(w) = alpha^{-t} grad L(x); substituting into A,
    the buffer map above turns A's recursion into B's iff
    lam = (1 - alpha)(alpha - gamma)/(alpha eta), i.e. alpha^2 - (1+gamma-eta lam) alpha
    + gamma = 0, and the position update into B's with eta_t = eta alpha^{-2t-1}.
    gamma = 0: alpha = 1 - eta lam, the buffer is irrelevant and the catalogue's statement is
    exact as written. gamma > 0: the catalogue's (and the paper's informal Theorem 1.1) wording
    omits the initial-buffer condition. Starting both runs from zero buffers (torch default)
    is NOT equivalent: B then needs the radial initial buffer -(1-alpha)/(alpha eta) w_0;
    without it the directions differ at O(1) (0.62 after 300 steps in our check).
    Status: published (Li & Arora, ICLR 2020, Thm 1.1 and its precise form); the explicit
    state map and the initial-buffer caveat are derived here.
    """
    a = exp_lr_alpha(eta, lam, momentum, root)
    t = np.arange(int(steps), dtype=float)
    return eta * a ** (-2.0 * t - 1.0)


def exp_lr_state_map(w, buf, t, eta, lam, momentum=0.0, root="larger"):
    """Map run A's state (w_t, v_t) after t steps to run B's (x_t, vt_t); see exp_lr_schedule.

    x_t = alpha^{-t} w_t;  vt_t = alpha^t (v_t - (1 - alpha)/(alpha eta) w_t).
    With t = 0 this gives the initial buffer run B needs. Status: derived here.
    """
    a = exp_lr_alpha(eta, lam, momentum, root)
    w = np.asarray(w, dtype=float)
    buf = np.asarray(buf, dtype=float)
    kappa = (1.0 - a) / (a * eta)
    return a ** (-t) * w, a ** t * (buf - kappa * w)


def exp_lr_decoupled(eta, lam_eff, steps, momentum=0.0):
    """Equivalent no-decay run of heavy ball with DECOUPLED decay on a scale-invariant loss.

    Statement. Run A (decoupled decay, heavy ball, optional projection of the direction):
        b_t = gamma b_{t-1} + g_t (b_{-1} = 0),  q_t = P_t(b_t),  w_{t+1} = a w_t - eta q_t,
    with a = 1 - eta lam_eff (e.g. SGDP: lam_eff = lam wd_ratio/(1 - gamma) where the projection
    fires), and P_t either the identity or the radial projection at w_t (written back into b_t
    or not). Run B has no decay, momentum gamma' = gamma a, zero initial buffer and the
    per-step learning rate eta_t = eta a^{-2t-1}. On any sequence of scale-invariant losses
    (same minibatches / noise), x_t = a^{-t} w_t and b~_t = a^t b_t for all t: the directions
    coincide exactly.
    Derivation: induction with w_t = a^t x_t. Scale invariance gives g_t = grad L_t(a^t x_t)
    = a^{-t} g~_t; then b_t = gamma b_{t-1} + g_t = a^{-t}(gamma a b~_{t-1} + g~_t) = a^{-t} b~_t;
    the projection is homogeneous of degree 0 in w and 1 in b, so q_t = a^{-t} q~_t (and a
    write-back into the buffer maps the same way); finally
    w_{t+1} = a^{t+1} x_t - eta a^{-t} q~_t = a^{t+1}(x_t - eta a^{-2t-1} q~_t).
    Unlike the coupled case (Li & Arora, ICLR 2020: alpha from x^2 - (1 + gamma - eta lam) x +
    gamma = 0, momentum unchanged, radial initial buffer), decoupled decay needs no initial
    buffer but changes the momentum coefficient to gamma a; with gamma = 0 both reduce to
    eta_t = eta (1 - eta lam)^{-2t-1}.
    Assumptions: exact scale invariance of every loss L_t; the projection's eps = 0 (its
    w/(||w|| + eps) is otherwise not exactly scale-equivariant). Status: derived here (a
    variant of Li & Arora's theorem). Regime: exact (float64 round-off).
    Returns a dict: 'a', 'schedule' (eta_t, t = 0..steps-1), 'momentum' (gamma a),
    'norm_ratio' (||x_t||/||w_t|| = a^{-t}, t = 0..steps).
    """
    a = 1.0 - float(eta) * float(lam_eff)
    if not 0.0 < a <= 1.0:
        raise ValueError(f"need 0 < 1 - eta*lam_eff <= 1; got eta={eta}, lam_eff={lam_eff}")
    t = np.arange(int(steps), dtype=float)
    return {"a": a, "schedule": eta * a ** (-2.0 * t - 1.0), "momentum": float(momentum) * a,
            "norm_ratio": a ** (-np.arange(int(steps) + 1, dtype=float))}
