//! Where the model runs in the browser.

use serde::{Deserialize, Serialize};

/// Burn on WebGPU, or Burn's CPU backend compiled to wasm.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn on WebGPU.
    #[strum(to_string = "webgpu", serialize = "gpu")]
    WebGpu,
    /// Burn's flex CPU backend in wasm.
    #[default]
    #[strum(to_string = "cpu")]
    Cpu,
}

impl Backend {
    /// The name used in the URL (`?backend=`, which also accepts `gpu`) and the test contract.
    pub fn id(self) -> &'static str {
        self.into()
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Backend::WebGpu => "WebGPU (GPU)",
            Backend::Cpu => "CPU (wasm)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_back_and_match_the_wire_format() {
        for b in [Backend::WebGpu, Backend::Cpu] {
            assert_eq!(b.id().parse::<Backend>(), Ok(b));
            assert_eq!(
                serde_json::to_string(&b).unwrap(),
                format!("\"{}\"", b.id())
            );
        }
        assert_eq!("gpu".parse::<Backend>(), Ok(Backend::WebGpu));
        assert!("tpu".parse::<Backend>().is_err());
    }
}
