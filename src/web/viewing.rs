//! The X-ray viewer's model, apart from its view (compiled natively too, for its tests): where
//! the image sits on the canvas (zoom, pan), how its values become grey levels (window/level,
//! invert), the heatmap over it, the keys, and the pixels it draws ([`render`]).
//!
//! Coordinates: the canvas is measured in its own pixels with the origin at its centre for
//! zoom anchors; `zoom` 1 fits the whole image into the canvas; `pan` moves the image's centre
//! away from the canvas' centre, in canvas pixels.

use crate::ml::explain::{Heatmap, blend_pixel};

/// The longest side the viewer keeps of an image; larger ones are shown downscaled to it (and
/// the viewer says so). 4,096² RGBA is 64 MB, the most a tab should hold for one picture.
pub const MAX_SIDE: u32 = 4096;
/// One step of the zoom buttons and keys.
pub const ZOOM_STEP: f64 = 1.25;
/// The smallest zoom (a quarter of the fitted size) and the largest (32 times it).
pub const ZOOM_RANGE: (f64, f64) = (0.25, 32.0);
/// One arrow key's pan, in canvas pixels.
pub const PAN_STEP: f64 = 48.0;
/// The narrowest window, as a fraction of the full range.
pub const MIN_WIDTH: f32 = 0.01;

/// Window/level: which part of the range of values spans black to white, as fractions of the
/// full range (0 = the least dense value the image can hold, 1 = the most).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// The value shown mid-grey.
    pub level: f32,
    /// The span of values from black to white.
    pub width: f32,
}

impl Default for Window {
    /// The whole range: the image as decoded (for a DICOM, the file's own window, which the
    /// decoder applies).
    fn default() -> Self {
        Window {
            level: 0.5,
            width: 1.0,
        }
    }
}

impl Window {
    /// The window within its limits: level in [0, 1], width in [[`MIN_WIDTH`], 2].
    pub fn clamped(self) -> Self {
        let finite = |v: f32, d: f32| if v.is_finite() { v } else { d };
        Window {
            level: finite(self.level, 0.5).clamp(0.0, 1.0),
            width: finite(self.width, 1.0).clamp(MIN_WIDTH, 2.0),
        }
    }

    /// After a window/level drag of `(dx, dy)` canvas pixels: right widens the window (more
    /// values, less contrast), down darkens the image (the level rises).
    pub fn dragged(self, dx: f64, dy: f64) -> Self {
        Window {
            level: self.level + (dy / 400.0) as f32,
            width: self.width * ((dx / 200.0).exp() as f32),
        }
        .clamped()
    }

    /// The grey level of every 16-bit value, inverted or not.
    pub fn lut(self, invert: bool) -> Vec<u8> {
        let w = self.clamped();
        let lo = w.level - w.width / 2.0;
        (0..=u16::MAX)
            .map(|v| {
                let t = ((f32::from(v) / 65_535.0 - lo) / w.width).clamp(0.0, 1.0);
                let t = if invert { 1.0 - t } else { t };
                (t * 255.0).round() as u8
            })
            .collect()
    }
}

/// What the viewer shows and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewState {
    /// 1 fits the image into the canvas.
    pub zoom: f64,
    /// The image centre's offset from the canvas centre, in canvas pixels.
    pub pan: (f64, f64),
    /// Window/level.
    pub window: Window,
    /// Dense shown dark instead of white.
    pub invert: bool,
    /// The heatmap drawn over the image.
    pub overlay: bool,
    /// The heatmap's opacity where it is strongest, in [0, 1].
    pub opacity: f32,
}

impl ViewState {
    /// A fresh view: fitted, the whole window, the overlay as asked.
    pub fn new(overlay: bool) -> Self {
        ViewState {
            zoom: 1.0,
            pan: (0.0, 0.0),
            window: Window::default(),
            invert: false,
            overlay,
            opacity: crate::ml::explain::OVERLAY_OPACITY,
        }
    }

    /// Back to fitted, the whole window, not inverted; the overlay's switch and opacity stay.
    pub fn reset(self) -> Self {
        ViewState {
            overlay: self.overlay,
            opacity: self.opacity,
            ..ViewState::new(self.overlay)
        }
    }

    /// Zoomed by `factor` keeping the image point under `at` (canvas pixels from the centre)
    /// where it is.
    pub fn zoom_at(self, factor: f64, at: (f64, f64)) -> Self {
        if !factor.is_finite() || factor <= 0.0 {
            return self;
        }
        // Rounded, so that zooming in and out again by the same steps comes back exactly.
        let zoom = ((self.zoom * factor * 1e9).round() / 1e9).clamp(ZOOM_RANGE.0, ZOOM_RANGE.1);
        let k = zoom / self.zoom;
        ViewState {
            zoom,
            pan: (
                at.0 - (at.0 - self.pan.0) * k,
                at.1 - (at.1 - self.pan.1) * k,
            ),
            ..self
        }
    }

    /// Moved by `(dx, dy)` canvas pixels.
    pub fn pan_by(self, dx: f64, dy: f64) -> Self {
        if !dx.is_finite() || !dy.is_finite() {
            return self;
        }
        ViewState {
            pan: (self.pan.0 + dx, self.pan.1 + dy),
            ..self
        }
    }

    /// After `command` (those that move between images are the caller's).
    pub fn apply(self, command: Command) -> Self {
        match command {
            Command::ZoomIn => self.zoom_at(ZOOM_STEP, (0.0, 0.0)),
            Command::ZoomOut => self.zoom_at(1.0 / ZOOM_STEP, (0.0, 0.0)),
            Command::Pan(dx, dy) => self.pan_by(dx, dy),
            Command::Invert => ViewState {
                invert: !self.invert,
                ..self
            },
            Command::Overlay => ViewState {
                overlay: !self.overlay,
                ..self
            },
            Command::Reset => self.reset(),
            Command::Next | Command::Previous => self,
        }
    }

    /// Whether anything differs from a fresh view's zoom, pan, window and invert.
    pub fn is_reset(&self) -> bool {
        *self == self.reset()
    }

    /// The part of the state that changes the picture's pixels (not where it is drawn).
    pub fn look(&self) -> (Window, bool, bool, f32) {
        (self.window, self.invert, self.overlay, self.opacity)
    }
}

/// What a key does in the viewer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    /// `+` or `=`.
    ZoomIn,
    /// `-`.
    ZoomOut,
    /// The arrow keys move the image the way they point.
    Pan(f64, f64),
    /// `i`.
    Invert,
    /// `h`: the heatmap on or off.
    Overlay,
    /// `0` or `r`.
    Reset,
    /// `n` or Page Down: the next result.
    Next,
    /// `p` or Page Up: the previous one.
    Previous,
}

/// The command for a `KeyboardEvent.key`, if the viewer has one.
pub fn command_for_key(key: &str) -> Option<Command> {
    Some(match key {
        "+" | "=" => Command::ZoomIn,
        "-" | "_" => Command::ZoomOut,
        "ArrowLeft" => Command::Pan(-PAN_STEP, 0.0),
        "ArrowRight" => Command::Pan(PAN_STEP, 0.0),
        "ArrowUp" => Command::Pan(0.0, -PAN_STEP),
        "ArrowDown" => Command::Pan(0.0, PAN_STEP),
        "i" | "I" => Command::Invert,
        "h" | "H" => Command::Overlay,
        "0" | "r" | "R" => Command::Reset,
        "n" | "N" | "PageDown" => Command::Next,
        "p" | "P" | "PageUp" => Command::Previous,
        _ => return None,
    })
}

/// Where an image of `image` pixels (width, height) is drawn on a canvas of `canvas` pixels:
/// `(scale, left, top)`, the canvas pixels per image pixel and the image's top-left corner.
pub fn placement(view: &ViewState, image: (u32, u32), canvas: (f64, f64)) -> (f64, f64, f64) {
    let (w, h) = (f64::from(image.0.max(1)), f64::from(image.1.max(1)));
    let fit = (canvas.0 / w).min(canvas.1 / h);
    let scale = fit * view.zoom;
    (
        scale,
        canvas.0 / 2.0 + view.pan.0 - w * scale / 2.0,
        canvas.1 / 2.0 + view.pan.1 - h * scale / 2.0,
    )
}

/// The image's RGBA pixels as the viewer shows them: each value through the window (and
/// inverted if asked), the heatmap over it where the overlay is on, blended as the CLI's
/// overlays are ([`blend_pixel`]), the map bilinearly upsampled to the image's resolution row
/// by row.
///
/// # Shapes
/// - `gray`: `width · height` values, row-major
/// - returns `4 · width · height` bytes
pub fn render(gray: &[u16], width: usize, view: &ViewState, heatmap: Option<&Heatmap>) -> Vec<u8> {
    let h = gray.len() / width.max(1);
    Painter::new(view, heatmap).rows(gray, width, 0..h)
}

/// [`render`] a band of rows at a time, so that a large image is never held twice over in
/// RGBA: the look's lookup table, made once.
pub struct Painter<'a> {
    lut: Vec<u8>,
    heat: Option<&'a Heatmap>,
    opacity: f32,
}

impl<'a> Painter<'a> {
    /// The painter of `view`'s look, with `heatmap` if its overlay is on.
    pub fn new(view: &ViewState, heatmap: Option<&'a Heatmap>) -> Self {
        Painter {
            lut: view.window.lut(view.invert),
            heat: heatmap.filter(|_| view.overlay && view.opacity > 0.0),
            opacity: view.opacity.clamp(0.0, 1.0),
        }
    }

    /// The RGBA pixels of rows `rows` of the image.
    ///
    /// # Shapes
    /// - `gray`: `width · height` values, row-major
    /// - returns `4 · width · rows.len()` bytes (fewer where `rows` runs past the image)
    pub fn rows(&self, gray: &[u16], width: usize, rows: std::ops::Range<usize>) -> Vec<u8> {
        let w = width.max(1);
        let h = gray.len() / w;
        let rows = rows.start.min(h)..rows.end.min(h);
        let mut out = vec![255u8; 4 * w * rows.len()];
        let src = &gray[rows.start * w..rows.end * w];
        for (k, (src, dst)) in src
            .chunks_exact(w)
            .zip(out.chunks_exact_mut(4 * w))
            .enumerate()
        {
            let y = rows.start + k;
            match self.heat {
                Some(map) => {
                    let row = map.upsample_row(y, w, h);
                    for ((&v, px), m) in src.iter().zip(dst.chunks_exact_mut(4)).zip(row) {
                        px[..3].copy_from_slice(&blend_pixel(
                            self.lut[usize::from(v)],
                            m,
                            self.opacity,
                        ));
                    }
                }
                None => {
                    for (&v, px) in src.iter().zip(dst.chunks_exact_mut(4)) {
                        px[..3].fill(self.lut[usize::from(v)]);
                    }
                }
            }
        }
        out
    }
}

/// The size an image of `dimensions` is kept at in the viewer: its own, or scaled down so that
/// its longest side is [`MAX_SIDE`].
pub fn kept_size(dimensions: (u32, u32)) -> (u32, u32) {
    kept_size_within(dimensions, MAX_SIDE)
}

/// The size an image of `dimensions` is shown at when its longest side may be `max_side`
/// at most (at least 1 pixel a side).
pub fn kept_size_within(dimensions: (u32, u32), max_side: u32) -> (u32, u32) {
    let (w, h) = (dimensions.0.max(1), dimensions.1.max(1));
    let (long, max_side) = (w.max(h), max_side.max(1));
    if long <= max_side {
        return (w, h);
    }
    let scale = f64::from(max_side) / f64::from(long);
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}

/// Where `current` sits among `ids` (the table's order) and its neighbours: (position from 1,
/// previous, next).
pub fn neighbours(ids: &[usize], current: usize) -> (Option<usize>, Option<usize>, Option<usize>) {
    match ids.iter().position(|&i| i == current) {
        Some(k) => (
            Some(k + 1),
            k.checked_sub(1).map(|j| ids[j]),
            ids.get(k + 1).copied(),
        ),
        None => (None, ids.first().copied(), ids.first().copied()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_window_shows_the_values_as_decoded_and_invert_flips_them() {
        let lut = Window::default().lut(false);
        assert_eq!((lut[0], lut[32_768], lut[65_535]), (0, 128, 255));
        let inv = Window::default().lut(true);
        assert_eq!((inv[0], inv[65_535]), (255, 0));
    }

    #[test]
    fn a_narrow_window_stretches_its_span_and_clips_the_rest() {
        let lut = Window {
            level: 0.25,
            width: 0.1,
        }
        .lut(false);
        let at = |f: f32| lut[(f * 65_535.0) as usize];
        assert_eq!(at(0.1), 0);
        assert_eq!(at(0.2), 0);
        assert!((127..=128).contains(&at(0.25)), "{}", at(0.25));
        assert_eq!(at(0.3), 255);
        assert_eq!(at(0.9), 255);
    }

    #[test]
    fn dragging_the_window_widens_rightwards_and_darkens_downwards_within_limits() {
        let w = Window::default();
        let d = w.dragged(200.0, 40.0);
        assert!(d.width > w.width && d.level > w.level, "{d:?}");
        let tight = w.dragged(-1e6, -1e6);
        assert_eq!(
            tight,
            Window {
                level: 0.0,
                width: MIN_WIDTH
            }
        );
        assert_eq!(w.dragged(f64::NAN, 0.0), Window::default());
    }

    #[test]
    fn zooming_keeps_the_point_under_the_cursor_still() {
        let v = ViewState::new(true).pan_by(30.0, -10.0);
        let canvas = (800.0, 600.0);
        let image = (1000, 500);
        let at = (120.0, 80.0); // from the canvas centre
        let under = |v: &ViewState| {
            let (s, left, top) = placement(v, image, canvas);
            (
                (canvas.0 / 2.0 + at.0 - left) / s,
                (canvas.1 / 2.0 + at.1 - top) / s,
            )
        };
        let before = under(&v);
        let z = v.zoom_at(2.0, at);
        assert_eq!(z.zoom, 2.0);
        let after = under(&z);
        assert!(
            (before.0 - after.0).abs() < 1e-9 && (before.1 - after.1).abs() < 1e-9,
            "{before:?} {after:?}"
        );
        assert_eq!(
            v.zoom_at(1e9, at).zoom,
            ZOOM_RANGE.1,
            "zoom stays within its range"
        );
        assert_eq!(v.zoom_at(f64::NAN, at), v);
    }

    #[test]
    fn the_fitted_image_is_centred_and_fills_the_limiting_side() {
        let (s, left, top) = placement(&ViewState::new(false), (1000, 500), (800.0, 600.0));
        assert_eq!(s, 0.8);
        assert_eq!((left, top), (0.0, 100.0));
    }

    #[test]
    fn keys_map_to_commands_and_reset_keeps_the_overlay_settings() {
        assert_eq!(command_for_key("+"), Some(Command::ZoomIn));
        assert_eq!(
            command_for_key("ArrowLeft"),
            Some(Command::Pan(-PAN_STEP, 0.0))
        );
        assert_eq!(command_for_key("PageDown"), Some(Command::Next));
        assert_eq!(command_for_key("x"), None);
        let mut v = ViewState::new(true);
        v.opacity = 0.3;
        let changed = v
            .apply(Command::ZoomIn)
            .apply(Command::Pan(5.0, 5.0))
            .apply(Command::Invert)
            .apply(Command::Overlay);
        assert!(!changed.is_reset());
        let back = changed.apply(Command::Reset);
        assert!(back.is_reset());
        assert_eq!((back.overlay, back.opacity), (false, 0.3));
        assert_eq!(back.zoom, 1.0);
    }

    #[test]
    fn render_windows_inverts_and_blends_the_heatmap_where_it_is_strong() {
        // 4×2: dark left, bright right.
        let gray = [0, 0, 65_535, 65_535, 0, 0, 65_535, 65_535];
        let plain = render(&gray, 4, &ViewState::new(false), None);
        assert_eq!(plain.len(), 32);
        assert_eq!(&plain[0..4], &[0, 0, 0, 255]);
        assert_eq!(&plain[12..16], &[255, 255, 255, 255]);
        let mut inv = ViewState::new(false);
        inv.invert = true;
        assert_eq!(&render(&gray, 4, &inv, None)[0..4], &[255, 255, 255, 255]);
        // A map that is 1 on the left column and 0 on the right.
        let map = Heatmap::from_raw(2, 1, &[1.0, 0.0]);
        let on = ViewState::new(true);
        let heat = render(&gray, 4, &on, Some(&map));
        assert_ne!(&heat[0..4], &plain[0..4], "red over the strong cell");
        assert!(heat[0] > heat[2], "{:?}", &heat[0..4]);
        assert_eq!(
            &heat[12..16],
            &plain[12..16],
            "the X-ray where the map is 0"
        );
        let off = render(&gray, 4, &ViewState::new(false), Some(&map));
        assert_eq!(off, plain, "the overlay switched off draws no heatmap");
        let mut faint = on;
        faint.opacity = 0.2;
        let f = render(&gray, 4, &faint, Some(&map));
        assert!(f[0] < heat[0], "lower opacity, less colour");
        // Painted in bands, the same pixels.
        let painter = Painter::new(&on, Some(&map));
        let mut bands = painter.rows(&gray, 4, 0..1);
        bands.extend(painter.rows(&gray, 4, 1..5));
        assert_eq!(bands, heat);
    }

    #[test]
    fn huge_images_are_kept_at_most_max_side_long_at_their_aspect_ratio() {
        assert_eq!(kept_size((2000, 1500)), (2000, 1500));
        assert_eq!(kept_size((8192, 6144)), (4096, 3072));
        assert_eq!(kept_size((100, 20_000)), (20, 4096));
        assert_eq!(kept_size_within((100, 50), 10), (10, 5));
        assert_eq!(kept_size_within((100, 50), 0), (1, 1));
    }

    #[test]
    fn neighbours_follow_the_table_order() {
        let ids = [7, 3, 9];
        assert_eq!(neighbours(&ids, 7), (Some(1), None, Some(3)));
        assert_eq!(neighbours(&ids, 3), (Some(2), Some(7), Some(9)));
        assert_eq!(neighbours(&ids, 9), (Some(3), Some(3), None));
        assert_eq!(neighbours(&ids, 5), (None, Some(7), Some(7)));
    }
}
