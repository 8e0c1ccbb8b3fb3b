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

from tfmargin.datasets.synthetic.canvas import (F, Canvas, band_distance, draw_band,
                                                draw_ellipse, ellipse_distance, fill_background,
                                                texture, unit)
from tfmargin.datasets.synthetic.identity import vary


# -- the layers --------------------------------------------------------------------------------
def _draw_body(canvas, idt, nz):
    cu, _ = canvas.pose(56.0, 150.0, -0.3)
    draw_ellipse(canvas, cu, 156.0, 66.0, 40.0, nz.clothing)
    cu, _ = canvas.pose(56.0, 118.0, -0.15)
    draw_ellipse(canvas, cu, idt.face_cy + idt.face_b + 8, idt.neck_w * canvas.sqx, 30.0,
                  idt.skin * 0.78, head=True)


def _hair_back(canvas, idt, nz):
    a, b, vol = idt.face_a * canvas.sqx, idt.face_b, idt.hair_volume
    cu, cv = canvas.pose(56.0, idt.face_cy - 0.12 * b, -0.2)
    style = idt.hair_style
    if style == 4:
        return
    if style == 1:  # long: a second ellipse down to the shoulders
        draw_ellipse(canvas, cu, idt.face_cy + 0.45 * b, a * vol * 1.12, b * 1.05, idt.hair * 0.9,
                      head=True)
    draw_ellipse(canvas, cu, cv, a * vol, b * vol * 0.93, idt.hair, head=True)
    if style == 5:  # curly: a ring of bumps around the crown
        for i in range(11):
            ang = math.pi * (0.05 + 0.9 * i / 10)
            bu, bv = cu - a * vol * math.cos(ang), cv - b * vol * 0.9 * math.sin(ang)
            draw_ellipse(canvas, bu, bv, 8.0, 8.0, idt.hair, head=True)


def _ears(canvas, idt):
    for side in (-1, 1):
        hidden = max(0.0, -side * canvas.yaw)  # the far ear tucks behind the head
        cu, cv = canvas.pose(56.0 + side * (idt.face_a * canvas.sqx + 1.5), idt.ear_y, -0.3)
        draw_ellipse(canvas, cu - side * hidden * 6, cv, 5.0 * (1 - 0.6 * hidden), idt.ear_b,
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
    pattern = texture(idt, u - F(cu - 56), v - F(cv - idt.face_cy), a, b)
    skin = idt.skin.astype(F)[:, None, None] * pattern
    canvas.paint(where, alpha, skin, head=True)
    for side in (-1, 1):  # cheek blush
        bu, bv = canvas.pose(56.0 + side * 20, idt.nose_y + 3, 0.4)
        draw_ellipse(canvas, bu, bv, 8.0, 6.0, np.array([0.85, 0.35, 0.35]), soft=5.0,
                      opacity=idt.blush)
    for mu, mv, radius, dark in idt.moles:
        if radius > 0:
            pu, pv = canvas.pose(mu, mv, 0.4)
            draw_ellipse(canvas, pu, pv, radius, radius, idt.skin * (1 - dark))
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
        below = canvas.edge(F(mv - 9 if idt.beard == 3 else mv - 5) - v, soft=4.0)
        opacity = idt.beard_density * (1.0 if idt.beard == 3 else 0.35)
        canvas.paint(where, inside * below * F(opacity), colour)
    if idt.beard in (2, 3):  # moustache
        draw_band(canvas, mu, mv - idt.upper_lip - 2.2, idt.mouth_hw * 0.85, 3.5, colour,
                   arch=0.012, opacity=idt.beard_density)
    if idt.beard == 4:  # goatee
        draw_ellipse(canvas, mu, mv + idt.lower_lip + 6, 7.0, 6.0, colour, soft=1.0,
                      opacity=idt.beard_density)


def _nose(canvas, idt, nz):
    skin = idt.skin
    tu, tv = canvas.pose(56.0, idt.nose_y, 1.0)
    ru, rv = canvas.pose(56.0, (idt.eye_y + idt.nose_y) / 2 + 1, 0.7)
    length = (idt.nose_y - idt.eye_y) / 2
    for side in (-1, 1):  # sides of the bridge
        draw_ellipse(canvas, ru + side * idt.nose_w * 0.42 * canvas.sqx, rv, 0.9, length,
                      skin * 0.72, soft=1.2, opacity=min(1.0, idt.nose_shade * 3))
    draw_ellipse(canvas, tu, tv + 0.8, idt.nose_w * canvas.sqx, 3.3, skin * 0.8, soft=0.8,
                  opacity=0.7)
    draw_ellipse(canvas, tu, tv - 0.3, idt.nose_tip_r * canvas.sqx, idt.nose_tip_r * 0.85,
                  np.minimum(skin * 1.05, 1), soft=0.8)
    for side in (-1, 1):
        draw_ellipse(canvas, tu + side * idt.nose_w * 0.5 * canvas.sqx, tv + 2.2, 1.5, 0.9,
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
    t = (u - F(mu)) * F(1 / hw)
    profile = unit(1 - t * t)
    centre = v - (F(mv) - F(lift) * (1 - profile))  # v relative to the (curved) lip line
    half_open = F(opening / 2) * profile
    upper = canvas.edge(np.maximum(-centre - half_open - F(idt.upper_lip) * profile,
                                   centre + half_open - F(0.3)))
    lower = canvas.edge(np.maximum(centre - half_open - F(idt.lower_lip) * profile,
                                   -centre + half_open - F(0.3)))
    lips = np.maximum(upper, lower) * F(0.9)
    canvas.paint(where, lips, idt.lip_colour)
    # the dark line between the lips, or the opening
    line = canvas.edge(np.abs(centre) - half_open - F(0.45) * profile)
    canvas.paint(where, line, np.array([0.28, 0.09, 0.09]))
    if opening > 1.0:
        teeth = canvas.edge(np.maximum(np.abs(centre + half_open - F(1.0)) - F(1.0),
                                       -(half_open - F(0.8))))
        canvas.paint(where, teeth * F(0.9), np.array([0.92, 0.9, 0.84]))


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
        canvas.paint(where, rim * F(0.9), idt.hair * 0.5 + 0.05)
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
        canvas.paint(where, crease * F(0.35), idt.skin * 0.7)


def _brows(canvas, idt, nz):
    for side in (-1, 1):
        cu, cv = canvas.pose(56.0 + side * (idt.eye_dx + 0.5), idt.eye_y - idt.brow_gap
                             - 2.5 * nz.brow_raise, 0.5)
        half = idt.brow_len * canvas.sqx
        draw_band(canvas, cu, cv, half, idt.brow_thick * 2, idt.hair * 0.6 + 0.02,
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
    du = u - F(cu)
    if style == 2:    # fringe: low, with a jagged edge
        phase = du * F(1 / 4.5)
        teeth = np.abs(phase - np.floor(phase) - F(0.5))
        line = F(top + 9) + F(2.0) * teeth + F(0.01) * du * du
    elif style == 3:  # side part: a sweep down to one side
        line = F(top + 3) + F(0.22 * idt.hair_part) * du + F(0.012) * du * du
    elif style == 4:  # shaved: a faint, high hairline
        line = F(top - 4) + F(0.015) * du * du
    else:
        line = F(top) + F(0.014) * du * du
    scalp = canvas.edge(ellipse_distance(u, v, cu, cv - 0.5, a * 1.04, b * 1.03))
    alpha = canvas.edge(v - line) * scalp
    if style == 4:
        alpha *= F(0.3)
    canvas.paint(where, alpha, idt.hair, head=True)


def _occluders(canvas, idt, nz):
    if nz.hair_lock:
        lu, lv = canvas.pose(56.0 + 22 * nz.hair_lock, idt.eye_y - 8, 0.3)
        draw_band(canvas, lu, lv, 20.0, 5.0, idt.hair, arch=0.0, angle=1.2 * nz.hair_lock + 1.57,
                   soft=0.4)
    if nz.glasses:
        frame = nz.glasses_colour
        for side in (-1, 1):
            far = max(0.0, side * canvas.yaw)
            cu, cv = canvas.pose(56.0 + side * idt.eye_dx, idt.eye_y + 0.5, 0.6)
            a, b = (idt.eye_a + 4.0) * canvas.sqx * (1 - 0.3 * far), 6.5
            if nz.glasses == 2:
                draw_ellipse(canvas, cu, cv, a, b, np.array([0.05, 0.05, 0.06]), opacity=0.88)
            r = a + 3
            reg = canvas.region(cu - r, cu + r, cv - r, cv + r)
            if reg is not None:
                where, u, v = reg
                ring = canvas.edge(np.abs(ellipse_distance(u, v, cu, cv, a, b)) - F(0.7))
                canvas.paint(where, ring, frame)
            tu, tv = canvas.pose(56.0 + side * (idt.eye_dx + idt.eye_a + 7), idt.eye_y - 1, 0.3)
            draw_band(canvas, tu, tv, 6.0, 1.6, frame)
        bu, bv = canvas.pose(56.0, idt.eye_y - 1.5, 0.7)
        draw_band(canvas, bu, bv, idt.eye_dx - idt.eye_a - 3.5, 1.6, frame, arch=0.05)
    if nz.hat:
        a, b = idt.face_a * canvas.sqx, idt.face_b
        cu, cv = canvas.pose(56.0, idt.face_cy, -0.1)
        line = idt.eye_y - 12 - 6 * nz.hat_depth
        reg = canvas.region(cu - a * 1.3, cu + a * 1.3, cv - b * 1.3, line + 6)
        if reg is not None:
            where, u, v = reg
            crown = canvas.edge(ellipse_distance(u, v, cu, cv - 2, a * 1.18, b * 1.12))
            alpha = crown * canvas.edge(v - F(line))
            canvas.paint(where, alpha, nz.hat_colour, head=True)
            fold = canvas.edge(np.abs(v - F(line - 3)) - F(2.5))
            canvas.paint(where, fold * alpha, nz.hat_colour * 0.8)
        if nz.hat == 1:  # cap brim
            draw_ellipse(canvas, cu + 4 * canvas.yaw, line, a * 1.15, 3.0, nz.hat_colour * 0.85,
                          head=True)
    for bu, bv, ba, bb, r, g, bl in nz.blobs:
        if ba > 0:
            draw_ellipse(canvas, bu, bv, ba, bb, np.array([r, g, bl]), soft=0.5)


def _light(canvas, idt, nz):
    """Directional light on an ellipsoid head, a gradient on the background, colour cast."""
    s = canvas.size
    reg = canvas.region(-1e4, 1e4, -1e4, 1e4)
    _, u, v = reg
    cu, cv = canvas.pose(56.0, idt.face_cy, 0.0)
    nx = (u - F(cu)) * F(1 / (idt.face_a * 1.15))
    ny = (v - F(cv)) * F(1 / (idt.face_b * 1.15))
    nz_ = np.sqrt(unit(1 - nx * nx - ny * ny))
    lx, ly, lz = (F(x) for x in nz.light)
    lambert = unit(nx * lx + ny * ly + nz_ * lz)
    strength = F(nz.light_strength)
    head_gain = F(nz.ambient) * (1 - strength + strength * F(1.25) * lambert)
    ramp = (canvas._pix - F(s / 2)) * F(2 / s)
    bg_gain = 1 + F(0.4) * strength * (lx * ramp[None, :] + ly * ramp[:, None])
    gain = bg_gain + canvas.head * (head_gain - bg_gain)
    img = canvas.img
    img *= gain
    img *= (nz.cast * nz.brightness).astype(F)[:, None, None]
    img -= F(0.5)
    img *= F(nz.contrast)
    img += F(0.5)


def render(identity, nuisance, size=192):
    """Draw `identity` under `nuisance` on a size x size canvas.

    Returns (image, landmarks): uint8 (size, size, 3) RGB, and float64 (5, 2) pixel coordinates
    (x, y) of the left eye, right eye, nose tip, left and right mouth corner as drawn (before
    any detector jitter). The identity is first moved by the nuisance's `appearance`.
    """
    idt, nz = vary(identity, nuisance.appearance), nuisance
    canvas = Canvas(size, nz, idt)
    fill_background(canvas, nz)
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
    image = canvas.img.transpose(1, 2, 0) * F(255)
    image += F(0.5)  # rounds, since the cast truncates
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
