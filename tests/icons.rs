//! The app's icons (`public/icons/icon-*.png`, named in `public/manifest.webmanifest`) are drawn
//! by this file: two lungs and a warm spot on the app's blue. The test checks that the committed
//! files are exactly what it draws; `cargo test --test icons -- --ignored write_icons` redraws
//! them (for example at another size).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![cfg(not(target_arch = "wasm32"))]

use image::{Rgba, RgbaImage};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SIZES: [u32; 2] = [192, 512];

/// The colour at (x, y) in a unit square, or none for the transparent corners.
fn paint(x: f32, y: f32) -> Option<[f32; 4]> {
    // Rounded square.
    let r = 0.18;
    let (cx, cy) = (x.clamp(r, 1.0 - r), y.clamp(r, 1.0 - r));
    if (x - cx).powi(2) + (y - cy).powi(2) > r * r {
        return None;
    }
    let blue = [26.0, 58.0, 92.0, 255.0];
    let lung = [232.0, 238.0, 244.0, 255.0];
    let warm = [240.0, 120.0, 40.0, 255.0];
    // Two lungs: ellipses either side of the midline, a gap between them.
    let in_lung = |ox: f32| ((x - ox) / 0.17).powi(2) + ((y - 0.53) / 0.30).powi(2) <= 1.0;
    if (in_lung(0.31) && x < 0.46) || (in_lung(0.69) && x > 0.54) {
        // The heatmap's spot in the right lung (the viewer's left), blended in.
        let d = ((x - 0.30).powi(2) + (y - 0.62).powi(2)).sqrt();
        let t = (1.0 - d / 0.12).clamp(0.0, 1.0);
        return Some(std::array::from_fn(|k| lung[k] * (1.0 - t) + warm[k] * t));
    }
    Some(blue)
}

/// The icon at `size` pixels, 4×4 supersampled.
fn icon(size: u32) -> RgbaImage {
    const S: u32 = 4;
    RgbaImage::from_fn(size, size, |px, py| {
        let mut acc = [0.0f32; 4];
        for sy in 0..S {
            for sx in 0..S {
                let x = (px as f32 + (sx as f32 + 0.5) / S as f32) / size as f32;
                let y = (py as f32 + (sy as f32 + 0.5) / S as f32) / size as f32;
                if let Some(c) = paint(x, y) {
                    for k in 0..3 {
                        acc[k] += c[k] * c[3] / 255.0;
                    }
                    acc[3] += c[3];
                }
            }
        }
        let n = (S * S) as f32;
        let alpha = acc[3] / n;
        let colour = |k: usize| {
            if alpha > 0.0 {
                (acc[k] / n * 255.0 / alpha).round() as u8
            } else {
                0
            }
        };
        Rgba([colour(0), colour(1), colour(2), alpha.round() as u8])
    })
}

fn path(size: u32) -> String {
    format!("{ROOT}/public/icons/icon-{size}.png")
}

#[test]
fn the_committed_icons_are_the_drawn_ones_and_the_manifest_names_them() {
    for size in SIZES {
        let committed = image::open(path(size))
            .unwrap_or_else(|e| panic!("{}: {e}", path(size)))
            .into_rgba8();
        assert!(
            committed == icon(size),
            "{} is stale: run write_icons",
            path(size)
        );
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/public/manifest.webmanifest")).unwrap(),
    )
    .unwrap();
    let icons = manifest["icons"].as_array().unwrap();
    for size in SIZES {
        assert!(
            icons
                .iter()
                .any(|i| i["src"] == format!("icons/icon-{size}.png")
                    && i["sizes"] == format!("{size}x{size}")
                    && i["type"] == "image/png"),
            "{manifest}"
        );
    }
    // Relative to the manifest (public/), so that it works under any sub-path.
    assert_eq!(manifest["start_url"], "../");
    assert_eq!(manifest["scope"], "../");
}

#[test]
#[ignore = "writes public/icons"]
fn write_icons() {
    for size in SIZES {
        icon(size).save(path(size)).unwrap();
    }
}
