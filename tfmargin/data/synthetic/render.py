"""Vectorised numpy rasteriser: one Identity under one Nuisance -> a canvas image and its landmarks.

Shapes are implicit functions (ellipses, parabolic bands) evaluated on the pixel grid in
template units, each only inside its own bounding box, with a one-pixel linear edge ramp for
anti-aliasing. Layers are alpha-composited back to front: background clutter, clothes, neck,
back hair, ears, face (skin texture, blush, moles, beard), nose, mouth, eyes, brows, front
hair, occluders (hair lock, glasses, hat, blobs); then directional light on an ellipsoid
head, colour cast, brightness and contrast.

Pose: template units map to canvas pixels by a similarity (roll, scale, shift); yaw and pitch
are drawn as a squeeze of the face plus a parallax shift of each feature by its depth, so the
inner features move against the outline as in a turned head. The five landmarks follow the
same maps, so alignment sees exactly where the eyes, nose tip and mouth corners were drawn.

Only +, -, *, / and sqrt touch pixel data (no SIMD transcendental functions, no reductions),
so the output bytes do not depend on the CPU's vector extensions.
"""

import math

import numpy as np

from tfmargin.data.synthetic.identity import TEXTURE_SIZE, vary

TEMPLATE_SPAN = 150.0  # template units across the canvas: the 112-unit crop plus pose margin
YAW_SHIFT = 7.0        # parallax (template units) of a feature at depth 1 for |yaw| = 1
PITCH_SHIFT = 5.0
_F = np.float32


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
        self.img = np.empty((3, size, size), _F)  # channels first: alpha broadcasts cheaply
        self.head = np.zeros((size, size), _F)  # coverage of head layers, for lighting
        self._pix = np.arange(size, dtype=_F)
        # Template coordinates of every pixel; shapes take views of their bounding boxes.
        dx = self._pix - _F(self.cx)
        dy = self._pix[:, None] - _F(self.cy)
        c, s = _F(self.cos / self.k), _F(self.sin / self.k)
        self.u = c * dx + s * dy + _F(56.0)
        self.v = c * dy - s * dx + _F(56.0)

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
        colour = np.asarray(colour, _F)
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
        d *= _F(-1.0 / (self.aa + soft))
        d += _F(0.5)
        return _unit(d)


def _unit(x):
    """Clip to [0, 1] in place (np.clip's Python wrapper costs more than the work here)."""
    np.maximum(x, 0, out=x)
    return np.minimum(x, 1, out=x)


# -- implicit shapes (all in template units) ---------------------------------------------------
def ellipse_distance(u, v, cu, cv, a, b, angle=0.0, taper=0.0, square=0.0):
    """Approximate signed distance to an ellipse, (q - 1) * min(a, b) with q the normalised
    radius: exact across the minor axis, and close enough anywhere for a one-pixel edge ramp.
    `taper` narrows the half-width below the centre (a jaw); `square` (0..1) pushes the
    diagonals out towards a rounded rectangle (q^2 = x^2 + y^2 - square * x^2 y^2)."""
    du, dv = u - _F(cu), v - _F(cv)
    if angle:
        c, s = _F(math.cos(angle)), _F(math.sin(angle))
        du, dv = c * du + s * dv, c * dv - s * du
    if taper:
        du /= 1 - _F(taper) * _unit(dv * _F(1 / b)) ** 2
    du *= _F(1 / a)
    dv *= _F(1 / b)
    du *= du
    dv *= dv
    if square:
        q2 = du * dv
        q2 *= _F(-square)
        q2 += du
        np.maximum(q2, -dv, out=q2)  # far outside, the quartic term would turn q^2 negative
    else:
        q2 = du
    q2 += dv
    q = np.sqrt(q2, out=q2)
    q -= _F(1)
    q *= _F(min(a, b))
    return q


def band_distance(u, v, cu, cv, half_length, thickness, arch=0.0, angle=0.0, skew=0.0):
    """Signed distance-like value to a curved band v = cv + arch * (u - cu)^2 (an arch for
    arch > 0, v pointing down) whose thickness tapers to zero at +-half_length (brows, lids,
    hair locks)."""
    du, dv = u - _F(cu), v - _F(cv)
    if angle:
        c, s = _F(math.cos(angle)), _F(math.sin(angle))
        du, dv = c * du + s * dv, c * dv - s * du
    t = du * _F(1 / half_length)
    profile = _unit(1 - t * t) * (1 - _F(skew) * t)
    across = np.abs(dv - _F(arch) * du * du) - _F(thickness / 2) * profile
    return np.maximum(across, np.abs(du) - _F(half_length), out=across)


def _fill_background(canvas, nz):
    s = canvas.size
    ramp = (canvas._pix / _F(s))[:, None]
    bg0, bg1 = nz.background.astype(_F)[:, :, None, None]
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
            dx = (pix[x0:x1] - _F(x * s)) * _F(1 / (w * s))
            dy = (pix[y0:y1, None] - _F(y * s)) * _F(1 / (h * s))
            alpha = _unit((_F(1) - dx * dx - dy * dy) * _F(min(w, h) * s / 2) + _F(0.5))
            canvas.paint((slice(y0, y1), slice(x0, x1)), alpha * _F(0.85), (r, g, b))
        else:  # rectangle, or (kind 2) a stripe a quarter as tall: pixel-aligned, no ramp
            if kind == 2:
                y0, y1 = int(y * s - h * s / 4), int(y * s + h * s / 4) + 1
                y0, y1 = max(0, y0), min(s, y1)
            canvas.paint((slice(y0, y1), slice(x0, x1)), _F(0.85), (r, g, b))


def _draw_ellipse(canvas, cu, cv, a, b, colour, angle=0.0, taper=0.0, soft=0.0, opacity=1.0,
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
        alpha *= _F(opacity)
    if modulate is not None:
        alpha = modulate(alpha, u, v)
    canvas.paint(where, alpha, colour, head)


def _draw_band(canvas, cu, cv, half_length, thickness, colour, arch=0.0, angle=0.0, skew=0.0,
               soft=0.0, opacity=1.0, head=False, extent=None):
    r = extent or (half_length + thickness + 2 + abs(arch) * half_length ** 2)
    reg = canvas.region(cu - r, cu + r, cv - r, cv + r)
    if reg is None:
        return
    where, u, v = reg
    d = band_distance(u, v, cu, cv, half_length, thickness, arch, angle, skew)
    alpha = canvas.edge(d, soft)
    if opacity != 1.0:
        alpha *= _F(opacity)
    canvas.paint(where, alpha, colour, head)


def _texture(identity, u, v, face_a, face_b):
    """The identity's skin pattern at template coordinates (nearest cell of the face box)."""
    n = TEXTURE_SIZE - 1
    fu = (u - _F(56 - face_a)) * _F(n / (2 * face_a)) + _F(0.5)
    fv = (v - _F(identity.face_cy - face_b)) * _F(n / (2 * face_b)) + _F(0.5)
    iu = np.minimum(np.maximum(fu, 0, out=fu), _F(n), out=fu).astype(np.int32)
    iv = np.minimum(np.maximum(fv, 0, out=fv), _F(n), out=fv).astype(np.int32)
    iv *= np.int32(TEXTURE_SIZE)
    iv += iu
    return np.take(identity.texture.reshape(-1), iv)


# -- the layers --------------------------------------------------------------------------------
def _draw_body(canvas, idt, nz):
    cu, _ = canvas.pose(56.0, 150.0, -0.3)
    _draw_ellipse(canvas, cu, 156.0, 66.0, 40.0, nz.clothing)
    cu, _ = canvas.pose(56.0, 118.0, -0.15)
    _draw_ellipse(canvas, cu, idt.face_cy + idt.face_b + 8, idt.neck_w * canvas.sqx, 30.0,
                  idt.skin * 0.78, head=True)


def _hair_back(canvas, idt, nz):
    a, b, vol = idt.face_a * canvas.sqx, idt.face_b, idt.hair_volume
    cu, cv = canvas.pose(56.0, idt.face_cy - 0.12 * b, -0.2)
    style = idt.hair_style
    if style == 4:
        return
    if style == 1:  # long: a second ellipse down to the shoulders
        _draw_ellipse(canvas, cu, idt.face_cy + 0.45 * b, a * vol * 1.12, b * 1.05, idt.hair * 0.9,
                      head=True)
    _draw_ellipse(canvas, cu, cv, a * vol, b * vol * 0.93, idt.hair, head=True)
    if style == 5:  # curly: a ring of bumps around the crown
        for i in range(11):
            ang = math.pi * (0.05 + 0.9 * i / 10)
            bu, bv = cu - a * vol * math.cos(ang), cv - b * vol * 0.9 * math.sin(ang)
            _draw_ellipse(canvas, bu, bv, 8.0, 8.0, idt.hair, head=True)


def _ears(canvas, idt):
    for side in (-1, 1):
        hidden = max(0.0, -side * canvas.yaw)  # the far ear tucks behind the head
        cu, cv = canvas.pose(56.0 + side * (idt.face_a * canvas.sqx + 1.5), idt.ear_y, -0.3)
        _draw_ellipse(canvas, cu - side * hidden * 6, cv, 5.0 * (1 - 0.6 * hidden), idt.ear_b,
                      idt.skin * 0.88, head=True)


def _face(canvas, idt, nz):
    a, b = idt.face_a * canvas.sqx, idt.face_b * canvas.sqy
    cu, cv = canvas.pose(56.0, idt.face_cy, 0.0)
    reg = canvas.region(cu - a - 2, cu + a + 2, cv - b - 2, cv + b + 2)
    if reg is None:
        return
    where, u, v = reg
    alpha = canvas.edge(ellipse_distance(u, v, cu, cv, a, b, taper=idt.jaw, square=idt.face_square))
    # Skin with the identity's texture pattern; the texture moves with the face.
    pattern = _texture(idt, u - _F(cu - 56), v - _F(cv - idt.face_cy), a, b)
    skin = idt.skin.astype(_F)[:, None, None] * pattern
    canvas.paint(where, alpha, skin, head=True)
    for side in (-1, 1):  # cheek blush
        bu, bv = canvas.pose(56.0 + side * 20, idt.nose_y + 3, 0.4)
        _draw_ellipse(canvas, bu, bv, 8.0, 6.0, np.array([0.85, 0.35, 0.35]), soft=5.0,
                      opacity=idt.blush)
    for mu, mv, radius, dark in idt.moles:
        if radius > 0:
            pu, pv = canvas.pose(mu, mv, 0.4)
            _draw_ellipse(canvas, pu, pv, radius, radius, idt.skin * (1 - dark))
    _beard(canvas, idt, cu, cv, a, b)


def _beard(canvas, idt, cu, cv, a, b):
    if idt.beard == 0:
        return
    colour = idt.hair * 0.9
    mu, mv = canvas.pose(56.0, idt.mouth_y, 0.6)
    if idt.beard in (1, 3):  # stubble / full beard: lower face below the nose
        reg = canvas.region(cu - a - 2, cu + a + 2, mv - 14, cv + b + 2)
        if reg is None:
            return
        where, u, v = reg
        inside = canvas.edge(ellipse_distance(u, v, cu, cv, a, idt.face_b * canvas.sqy,
                                              taper=idt.jaw, square=idt.face_square))
        below = canvas.edge(_F(mv - 9 if idt.beard == 3 else mv - 5) - v, soft=4.0)
        opacity = idt.beard_density * (1.0 if idt.beard == 3 else 0.35)
        canvas.paint(where, inside * below * _F(opacity), colour)
    if idt.beard in (2, 3):  # moustache
        _draw_band(canvas, mu, mv - idt.upper_lip - 2.2, idt.mouth_hw * 0.85, 3.5, colour,
                   arch=0.012, opacity=idt.beard_density)
    if idt.beard == 4:  # goatee
        _draw_ellipse(canvas, mu, mv + idt.lower_lip + 6, 7.0, 6.0, colour, soft=1.0,
                      opacity=idt.beard_density)


def _nose(canvas, idt, nz):
    skin = idt.skin
    tu, tv = canvas.pose(56.0, idt.nose_y, 1.0)
    ru, rv = canvas.pose(56.0, (idt.eye_y + idt.nose_y) / 2 + 1, 0.7)
    length = (idt.nose_y - idt.eye_y) / 2
    for side in (-1, 1):  # sides of the bridge
        _draw_ellipse(canvas, ru + side * idt.nose_w * 0.42 * canvas.sqx, rv, 0.9, length,
                      skin * 0.72, soft=1.2, opacity=min(1.0, idt.nose_shade * 3))
    _draw_ellipse(canvas, tu, tv + 0.8, idt.nose_w * canvas.sqx, 3.3, skin * 0.8, soft=0.8,
                  opacity=0.7)
    _draw_ellipse(canvas, tu, tv - 0.3, idt.nose_tip_r * canvas.sqx, idt.nose_tip_r * 0.85,
                  np.minimum(skin * 1.05, 1), soft=0.8)
    for side in (-1, 1):
        _draw_ellipse(canvas, tu + side * idt.nose_w * 0.5 * canvas.sqx, tv + 2.2, 1.5, 0.9,
                      skin * 0.3)


def _mouth(canvas, idt, nz):
    mu, mv = canvas.pose(56.0, idt.mouth_y, 0.6)
    hw = idt.mouth_hw * canvas.sqx * (1 + 0.08 * max(nz.smile, 0))
    lift = (idt.mouth_curve + 0.09 * nz.smile) * hw
    opening = 5.5 * nz.mouth_open
    reg = canvas.region(mu - hw - 2, mu + hw + 2, mv - lift - idt.upper_lip - 4,
                        mv + abs(lift) + opening + idt.lower_lip + 4)
    if reg is None:
        return
    where, u, v = reg
    t = (u - _F(mu)) * _F(1 / hw)
    profile = _unit(1 - t * t)
    centre = v - (_F(mv) - _F(lift) * (1 - profile))  # v relative to the (curved) lip line
    half_open = _F(opening / 2) * profile
    upper = canvas.edge(np.maximum(-centre - half_open - _F(idt.upper_lip) * profile,
                                   centre + half_open - _F(0.3)))
    lower = canvas.edge(np.maximum(centre - half_open - _F(idt.lower_lip) * profile,
                                   -centre + half_open - _F(0.3)))
    lips = np.maximum(upper, lower) * _F(0.9)
    canvas.paint(where, lips, idt.lip_colour)
    # the dark line between the lips, or the opening
    line = canvas.edge(np.abs(centre) - half_open - _F(0.45) * profile)
    canvas.paint(where, line, np.array([0.28, 0.09, 0.09]))
    if opening > 1.0:
        teeth = canvas.edge(np.maximum(np.abs(centre + half_open - _F(1.0)) - _F(1.0),
                                       -(half_open - _F(0.8))))
        canvas.paint(where, teeth * _F(0.9), np.array([0.92, 0.9, 0.84]))


def _eyes(canvas, idt, nz):
    for side in (-1, 1):
        far = max(0.0, side * canvas.yaw)
        cu, cv = canvas.pose(56.0 + side * idt.eye_dx, idt.eye_y, 0.55)
        a = idt.eye_a * canvas.sqx * (1 - 0.3 * far)
        b = idt.eye_b * nz.eye_open
        tilt = -side * idt.eye_tilt
        r = a + 3
        reg = canvas.region(cu - r, cu + r, cv - r, cv + r)
        if reg is None:
            continue
        where, u, v = reg
        # lashes / lid rim: a larger dark ellipse, thicker on top
        rim = canvas.edge(ellipse_distance(u, v, cu, cv - 0.35, a + 0.6, b + 0.9, tilt))
        canvas.paint(where, rim * _F(0.9), idt.hair * 0.5 + 0.05)
        sclera = canvas.edge(ellipse_distance(u, v, cu, cv, a, max(b, 0.05), tilt))
        canvas.paint(where, sclera.copy(), np.array([0.93, 0.91, 0.88]))
        iu, iv = cu + nz.gaze[0] * a, cv + nz.gaze[1] * b
        r = idt.iris_r
        iris = canvas.edge(ellipse_distance(u, v, iu, iv, r * (1 - 0.3 * far), r)) * sclera
        canvas.paint(where, iris, idt.eye_colour)
        pupil = canvas.edge(ellipse_distance(u, v, iu, iv, r * 0.45, r * 0.45)) * sclera
        canvas.paint(where, pupil, np.array([0.03, 0.03, 0.04]))
        glint = canvas.edge(ellipse_distance(u, v, iu + 0.8, iv - 0.9, 0.55, 0.55)) * sclera
        canvas.paint(where, glint, np.array([1.0, 1.0, 1.0]))
        # crease above the eye
        crease = canvas.edge(band_distance(u, v, cu, cv - b - 2.0, a * 0.8, 0.6, arch=0.03,
                                           angle=tilt))
        canvas.paint(where, crease * _F(0.35), idt.skin * 0.7)


def _brows(canvas, idt, nz):
    for side in (-1, 1):
        cu, cv = canvas.pose(56.0 + side * (idt.eye_dx + 0.5), idt.eye_y - idt.brow_gap
                             - 2.5 * nz.brow_raise, 0.5)
        half = idt.brow_len * canvas.sqx
        _draw_band(canvas, cu, cv, half, idt.brow_thick * 2, idt.hair * 0.6 + 0.02,
                   arch=idt.brow_arch, angle=side * idt.brow_tilt, skew=side * 0.35,
                   soft=0.3, opacity=0.95)


def _hair_front(canvas, idt, nz):
    style = idt.hair_style
    a, b = idt.face_a * canvas.sqx, idt.face_b
    cu, cv = canvas.pose(56.0, idt.face_cy, -0.1)
    top = idt.eye_y - idt.hairline
    reg = canvas.region(cu - a * 1.15, cu + a * 1.15, cv - b * 1.15, idt.eye_y + 6)
    if reg is None:
        return
    where, u, v = reg
    du = u - _F(cu)
    if style == 2:    # fringe: low, with a jagged edge
        phase = du * _F(1 / 4.5)
        teeth = np.abs(phase - np.floor(phase) - _F(0.5))
        line = _F(top + 9) + _F(2.0) * teeth + _F(0.01) * du * du
    elif style == 3:  # side part: a sweep down to one side
        line = _F(top + 3) + _F(0.22 * idt.hair_part) * du + _F(0.012) * du * du
    elif style == 4:  # shaved: a faint, high hairline
        line = _F(top - 4) + _F(0.015) * du * du
    else:
        line = _F(top) + _F(0.014) * du * du
    scalp = canvas.edge(ellipse_distance(u, v, cu, cv - 0.5, a * 1.04, b * 1.03))
    alpha = canvas.edge(v - line) * scalp
    if style == 4:
        alpha *= _F(0.3)
    canvas.paint(where, alpha, idt.hair, head=True)


def _occluders(canvas, idt, nz):
    if nz.hair_lock:
        lu, lv = canvas.pose(56.0 + 22 * nz.hair_lock, idt.eye_y - 8, 0.3)
        _draw_band(canvas, lu, lv, 20.0, 5.0, idt.hair, arch=0.0, angle=1.2 * nz.hair_lock + 1.57,
                   soft=0.4)
    if nz.glasses:
        frame = nz.glasses_colour
        for side in (-1, 1):
            far = max(0.0, side * canvas.yaw)
            cu, cv = canvas.pose(56.0 + side * idt.eye_dx, idt.eye_y + 0.5, 0.6)
            a, b = (idt.eye_a + 4.0) * canvas.sqx * (1 - 0.3 * far), 6.5
            if nz.glasses == 2:
                _draw_ellipse(canvas, cu, cv, a, b, np.array([0.05, 0.05, 0.06]), opacity=0.88)
            r = a + 3
            reg = canvas.region(cu - r, cu + r, cv - r, cv + r)
            if reg is not None:
                where, u, v = reg
                ring = canvas.edge(np.abs(ellipse_distance(u, v, cu, cv, a, b)) - _F(0.7))
                canvas.paint(where, ring, frame)
            tu, tv = canvas.pose(56.0 + side * (idt.eye_dx + idt.eye_a + 7), idt.eye_y - 1, 0.3)
            _draw_band(canvas, tu, tv, 6.0, 1.6, frame)
        bu, bv = canvas.pose(56.0, idt.eye_y - 1.5, 0.7)
        _draw_band(canvas, bu, bv, idt.eye_dx - idt.eye_a - 3.5, 1.6, frame, arch=0.05)
    if nz.hat:
        a, b = idt.face_a * canvas.sqx, idt.face_b
        cu, cv = canvas.pose(56.0, idt.face_cy, -0.1)
        line = idt.eye_y - 12 - 6 * nz.hat_depth
        reg = canvas.region(cu - a * 1.3, cu + a * 1.3, cv - b * 1.3, line + 6)
        if reg is not None:
            where, u, v = reg
            crown = canvas.edge(ellipse_distance(u, v, cu, cv - 2, a * 1.18, b * 1.12))
            alpha = crown * canvas.edge(v - _F(line))
            canvas.paint(where, alpha, nz.hat_colour, head=True)
            fold = canvas.edge(np.abs(v - _F(line - 3)) - _F(2.5))
            canvas.paint(where, fold * alpha, nz.hat_colour * 0.8)
        if nz.hat == 1:  # cap brim
            _draw_ellipse(canvas, cu + 4 * canvas.yaw, line, a * 1.15, 3.0, nz.hat_colour * 0.85,
                          head=True)
    for bu, bv, ba, bb, r, g, bl in nz.blobs:
        if ba > 0:
            _draw_ellipse(canvas, bu, bv, ba, bb, np.array([r, g, bl]), soft=0.5)


def _light(canvas, idt, nz):
    """Directional light on an ellipsoid head, a gradient on the background, colour cast."""
    s = canvas.size
    reg = canvas.region(-1e4, 1e4, -1e4, 1e4)
    _, u, v = reg
    cu, cv = canvas.pose(56.0, idt.face_cy, 0.0)
    nx = (u - _F(cu)) * _F(1 / (idt.face_a * 1.15))
    ny = (v - _F(cv)) * _F(1 / (idt.face_b * 1.15))
    nz_ = np.sqrt(_unit(1 - nx * nx - ny * ny))
    lx, ly, lz = (_F(x) for x in nz.light)
    lambert = _unit(nx * lx + ny * ly + nz_ * lz)
    strength = _F(nz.light_strength)
    head_gain = _F(nz.ambient) * (1 - strength + strength * _F(1.25) * lambert)
    ramp = (canvas._pix - _F(s / 2)) * _F(2 / s)
    bg_gain = 1 + _F(0.4) * strength * (lx * ramp[None, :] + ly * ramp[:, None])
    gain = bg_gain + canvas.head * (head_gain - bg_gain)
    img = canvas.img
    img *= gain
    img *= (nz.cast * nz.brightness).astype(_F)[:, None, None]
    img -= _F(0.5)
    img *= _F(nz.contrast)
    img += _F(0.5)


def render(identity, nuisance, size=192):
    """Draw `identity` under `nuisance` on a size x size canvas.

    Returns (image, landmarks): uint8 (size, size, 3) RGB, and float64 (5, 2) pixel coordinates
    (x, y) of the left eye, right eye, nose tip, left and right mouth corner as drawn (before
    any detector jitter). The identity is first moved by the nuisance's `appearance`.
    """
    idt, nz = vary(identity, nuisance.appearance), nuisance
    canvas = Canvas(size, nz, idt)
    _fill_background(canvas, nz)
    _draw_body(canvas, idt, nz)
    _hair_back(canvas, idt, nz)
    _ears(canvas, idt)
    _face(canvas, idt, nz)
    _nose(canvas, idt, nz)
    _mouth(canvas, idt, nz)
    _eyes(canvas, idt, nz)
    _brows(canvas, idt, nz)
    _hair_front(canvas, idt, nz)
    _occluders(canvas, idt, nz)
    _light(canvas, idt, nz)
    image = canvas.img.transpose(1, 2, 0) * _F(255)
    image += _F(0.5)  # rounds, since the cast truncates
    image = np.minimum(np.maximum(image, 0, out=image), 255, out=image).astype(np.uint8)
    return image, canvas.to_pixels(posed_landmarks(canvas, idt, nz))


def posed_landmarks(canvas, idt, nz):
    """The five landmarks in posed template units, matching what _eyes/_nose/_mouth draw."""
    eyes = [canvas.pose(56.0 + side * idt.eye_dx, idt.eye_y, 0.55) for side in (-1, 1)]
    nose = canvas.pose(56.0, idt.nose_y, 1.0)
    mu, mv = canvas.pose(56.0, idt.mouth_y, 0.6)
    hw = idt.mouth_hw * canvas.sqx * (1 + 0.08 * max(nz.smile, 0))
    lift = (idt.mouth_curve + 0.09 * nz.smile) * hw
    return np.array([*eyes, nose, (mu - hw, mv - lift), (mu + hw, mv - lift)])
