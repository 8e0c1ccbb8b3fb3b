"""The rasteriser's canvas and its drawing primitives: implicit shapes (ellipses, parabolic
bands) in template units, each evaluated only inside its bounding box with a one-pixel edge
ramp, alpha-composited; the skin texture. Only +, -, *, / and sqrt touch pixel data (see
render.py)."""

import math

import numpy as np

from tfmargin.datasets.synthetic.identity import TEXTURE_SIZE

TEMPLATE_SPAN = 150.0  # template units across the canvas: the 112-unit crop plus pose margin
YAW_SHIFT = 7.0        # parallax (template units) of a feature at depth 1 for |yaw| = 1
PITCH_SHIFT = 5.0
F = np.float32


class Canvas:
    """An RGB float canvas with the per-image template->pixel similarity."""

    def __init__(self, size, nuisance, identity):
        self.size = size
        self.k = size / TEMPLATE_SPAN * nuisance.scale   # pixels per template unit
        self.cos, self.sin = math.cos(nuisance.roll), math.sin(nuisance.roll)
        # Canvas centre <-> template point (56, 56) moved by the shift.
        self.cx = size / 2 + self.k * (self.cos * nuisance.shift[0] - self.sin * nuisance.shift[1])
        self.cy = size / 2 + self.k * (self.sin * nuisance.shift[0] + self.cos * nuisance.shift[1])
        self.yaw, self.pitch = nuisance.yaw, nuisance.pitch
        self.sqx = 1.0 - 0.18 * abs(self.yaw)
        self.sqy = 1.0 - 0.08 * abs(self.pitch)
        self.pivot_v = identity.face_cy
        self.aa = 1.0 / self.k  # one pixel, in template units: the anti-aliasing ramp
        self.img = np.empty((3, size, size), F)  # channels first: alpha broadcasts cheaply
        self.head = np.zeros((size, size), F)  # coverage of head layers, for lighting
        self._pix = np.arange(size, dtype=F)
        # Template coordinates of every pixel; shapes take views of their bounding boxes.
        dx = self._pix - F(self.cx)
        dy = self._pix[:, None] - F(self.cy)
        c, s = F(self.cos / self.k), F(self.sin / self.k)
        self.u = c * dx + s * dy + F(56.0)
        self.v = c * dy - s * dx + F(56.0)

    # -- geometry ------------------------------------------------------------------------------
    def pose(self, u, v, depth):
        """Neutral template point -> posed template point (yaw/pitch squeeze and parallax)."""
        return (56.0 + (u - 56.0) * self.sqx + self.yaw * depth * YAW_SHIFT,
                self.pivot_v + (v - self.pivot_v) * self.sqy + self.pitch * depth * PITCH_SHIFT)

    def to_pixels(self, uv):
        """(n, 2) posed template points -> canvas pixel coordinates."""
        uv = np.asarray(uv, np.float64)
        du, dv = uv[:, 0] - 56.0, uv[:, 1] - 56.0
        return np.stack([self.cx + self.k * (self.cos * du - self.sin * dv),
                         self.cy + self.k * (self.sin * du + self.cos * dv)], axis=1)

    def region(self, u0, u1, v0, v1):
        """Pixel slices covering the template box and the template coordinates U, V there
        (None if the box is off the canvas)."""
        k, c, s = self.k, self.cos, self.sin
        xs, ys = [], []
        for u, v in ((u0, v0), (u1, v0), (u0, v1), (u1, v1)):  # plain floats: numpy is slower here
            du, dv = u - 56.0, v - 56.0
            xs.append(self.cx + k * (c * du - s * dv))
            ys.append(self.cy + k * (s * du + c * dv))
        x0, y0 = max(math.floor(min(xs)) - 1, 0), max(math.floor(min(ys)) - 1, 0)
        x1, y1 = min(math.ceil(max(xs)) + 2, self.size), min(math.ceil(max(ys)) + 2, self.size)
        if x0 >= x1 or y0 >= y1:
            return None
        where = (slice(y0, y1), slice(x0, x1))
        return where, self.u[where], self.v[where]  # views: callers never write to them

    # -- compositing ---------------------------------------------------------------------------
    def paint(self, where, alpha, colour, head=False):
        """Composite `colour` ((3,) or (3, h, w)) over the region with coverage `alpha`."""
        target = self.img[(slice(None), *where)]
        colour = np.asarray(colour, F)
        if colour.ndim == 1:
            colour = colour[:, None, None]
        mix = colour - target
        mix *= alpha  # an (h, w) array, or a constant
        target += mix
        if head:
            h = self.head[where]
            h += alpha * (1 - h)

    def edge(self, d, soft=0.0):
        """Signed distance (template units, negative inside) -> coverage in [0, 1]."""
        d *= F(-1.0 / (self.aa + soft))
        d += F(0.5)
        return unit(d)


def unit(x):
    """Clip to [0, 1] in place (np.clip's Python wrapper costs more than the work here)."""
    np.maximum(x, 0, out=x)
    return np.minimum(x, 1, out=x)


# -- implicit shapes (all in template units) ---------------------------------------------------
def ellipse_distance(u, v, cu, cv, a, b, angle=0.0, taper=0.0, square=0.0):
    """Approximate signed distance to an ellipse, (q - 1) * min(a, b) with q the normalised
    radius: exact across the minor axis, and close enough anywhere for a one-pixel edge ramp.
    `taper` narrows the half-width below the centre (a jaw); `square` (0..1) pushes the
    diagonals out towards a rounded rectangle (q^2 = x^2 + y^2 - square * x^2 y^2)."""
    du, dv = u - F(cu), v - F(cv)
    if angle:
        c, s = F(math.cos(angle)), F(math.sin(angle))
        du, dv = c * du + s * dv, c * dv - s * du
    if taper:
        du /= 1 - F(taper) * unit(dv * F(1 / b)) ** 2
    du *= F(1 / a)
    dv *= F(1 / b)
    du *= du
    dv *= dv
    if square:
        q2 = du * dv
        q2 *= F(-square)
        q2 += du
        np.maximum(q2, -dv, out=q2)  # far outside, the quartic term would turn q^2 negative
    else:
        q2 = du
    q2 += dv
    q = np.sqrt(q2, out=q2)
    q -= F(1)
    q *= F(min(a, b))
    return q


def band_distance(u, v, cu, cv, half_length, thickness, arch=0.0, angle=0.0, skew=0.0):
    """Signed distance-like value to a curved band v = cv + arch * (u - cu)^2 (an arch for
    arch > 0, v pointing down) whose thickness tapers to zero at +-half_length (brows, lids,
    hair locks)."""
    du, dv = u - F(cu), v - F(cv)
    if angle:
        c, s = F(math.cos(angle)), F(math.sin(angle))
        du, dv = c * du + s * dv, c * dv - s * du
    t = du * F(1 / half_length)
    profile = unit(1 - t * t) * (1 - F(skew) * t)
    across = np.abs(dv - F(arch) * du * du) - F(thickness / 2) * profile
    return np.maximum(across, np.abs(du) - F(half_length), out=across)


def fill_background(canvas, nz):
    s = canvas.size
    ramp = (canvas._pix / F(s))[:, None]
    bg0, bg1 = nz.background.astype(F)[:, :, None, None]
    canvas.img[:] = bg0 + ramp * (bg1 - bg0)
    pix = canvas._pix
    for kind, x, y, w, h, r, g, b in nz.clutter:
        if w <= 0:
            continue
        x0, x1 = int(max(0, (x - w) * s)), int(min(s, (x + w) * s) + 1)
        y0, y1 = int(max(0, (y - h) * s)), int(min(s, (y + h) * s) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        if kind == 0:  # ellipse
            dx = (pix[x0:x1] - F(x * s)) * F(1 / (w * s))
            dy = (pix[y0:y1, None] - F(y * s)) * F(1 / (h * s))
            alpha = unit((F(1) - dx * dx - dy * dy) * F(min(w, h) * s / 2) + F(0.5))
            canvas.paint((slice(y0, y1), slice(x0, x1)), alpha * F(0.85), (r, g, b))
        else:  # rectangle, or (kind 2) a stripe a quarter as tall: pixel-aligned, no ramp
            if kind == 2:
                y0, y1 = int(y * s - h * s / 4), int(y * s + h * s / 4) + 1
                y0, y1 = max(0, y0), min(s, y1)
            canvas.paint((slice(y0, y1), slice(x0, x1)), F(0.85), (r, g, b))


def draw_ellipse(canvas, cu, cv, a, b, colour, angle=0.0, taper=0.0, soft=0.0, opacity=1.0,
                  head=False, modulate=None):
    ru = rv = max(a, b) * 1.05 + 2 + soft
    if not angle and not taper:
        ru, rv = a + 2 + soft, b + 2 + soft
    reg = canvas.region(cu - ru, cu + ru, cv - rv, cv + rv)
    if reg is None:
        return
    where, u, v = reg
    alpha = canvas.edge(ellipse_distance(u, v, cu, cv, a, b, angle, taper), soft)
    if opacity != 1.0:
        alpha *= F(opacity)
    if modulate is not None:
        alpha = modulate(alpha, u, v)
    canvas.paint(where, alpha, colour, head)


def draw_band(canvas, cu, cv, half_length, thickness, colour, arch=0.0, angle=0.0, skew=0.0,
               soft=0.0, opacity=1.0, head=False, extent=None):
    r = extent or (half_length + thickness + 2 + abs(arch) * half_length ** 2)
    reg = canvas.region(cu - r, cu + r, cv - r, cv + r)
    if reg is None:
        return
    where, u, v = reg
    d = band_distance(u, v, cu, cv, half_length, thickness, arch, angle, skew)
    alpha = canvas.edge(d, soft)
    if opacity != 1.0:
        alpha *= F(opacity)
    canvas.paint(where, alpha, colour, head)


def texture(identity, u, v, face_a, face_b):
    """The identity's skin pattern at template coordinates (nearest cell of the face box)."""
    n = TEXTURE_SIZE - 1
    fu = (u - F(56 - face_a)) * F(n / (2 * face_a)) + F(0.5)
    fv = (v - F(identity.face_cy - face_b)) * F(n / (2 * face_b)) + F(0.5)
    iu = np.minimum(np.maximum(fu, 0, out=fu), F(n), out=fu).astype(np.int32)
    iv = np.minimum(np.maximum(fv, 0, out=fv), F(n), out=fv).astype(np.int32)
    iv *= np.int32(TEXTURE_SIZE)
    iv += iu
    return np.take(identity.texture.reshape(-1), iv)
