//! Saving and loading a [`ResNet`]'s parameters.
//!
//! The file is Burn's own burnpack format (what `Module::into_record().save()` writes), so any
//! Burn tool can read it; this module only adds the choice of storage precision (f16 for the
//! shipped weights, f32 for checkpoints) and an async export for WebGPU, where a synchronous
//! tensor read is not allowed. Loading casts whatever precision is stored to the model's own.
//!
//! The stored names are the module paths without the names of enum variants: a block's first
//! convolution is `stages.1.blocks.0.conv1.weight` whichever kind of block it is (Burn's own
//! path would be `stages.1.blocks.0.Basic.conv1.weight`). That keeps the names torchvision
//! uses, and every file written before the block became an enum loads unchanged.

use burn::{
    module::{Module, ModuleVisitor, Param, ParamId},
    prelude::*,
    store::ModuleRecord,
    tensor::{Bytes, DType},
};

use super::model::{ResNet, ResNetConfig};

/// Precision in which parameters are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// 16-bit floats: half the size, for the shipped weights.
    F16,
    /// 32-bit floats: exact, for checkpoints.
    F32,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Precision::F16 => DType::F16,
            Precision::F32 => DType::F32,
        }
    }
}

/// Why weights could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Not a burnpack file, or a damaged one.
    #[error("the weights file is not readable: {0}")]
    Format(String),
    /// A burnpack file for another architecture.
    #[error("the weights do not fit the model {model}: {detail}")]
    Mismatch {
        /// The model's name.
        model: String,
        /// What did not fit.
        detail: String,
    },
    /// Reading a tensor back from the device failed: how a lost GPU, or one out of memory,
    /// shows. The one variant for it; callers that explain it to people match on it.
    #[error("reading from the device failed: {0}")]
    Read(String),
    /// Values read back that are not f32 (a model built with another float type).
    #[error("the values read back are not f32: {0}")]
    Values(String),
    /// A model [`ResNet::fuse`] rewrote for inference: its parameters are no longer the
    /// model's own (batch norms folded away, the stem's kernel rearranged).
    #[error("a model fused for inference cannot be saved; save the model it was fused from")]
    Fused,
}

/// Reads f32 values out of tensor data read back from a device.
pub fn f32_values(data: TensorData) -> Result<Vec<f32>, WeightsError> {
    data.try_to_vec::<f32>()
        .map_err(|e| WeightsError::Values(format!("{e:?}")))
}

/// Reads a tensor's values back from its device, asynchronously (required on WebGPU).
pub async fn read_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, WeightsError> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| WeightsError::Read(format!("{e:?}")))?;
    f32_values(data)
}

/// Reads a tensor's values back synchronously (CPU backends and native wgpu only).
#[cfg(not(target_arch = "wasm32"))]
pub fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, WeightsError> {
    f32_values(t.into_data())
}

/// A parameter as stored: its module path, id and (lazy) value flattened to one dimension.
struct Entry {
    path: String,
    id: ParamId,
    shape: Vec<usize>,
    value: Tensor<1>,
}

/// A module path as it is walked: each part, and whether it names an enum's variant.
#[derive(Default)]
struct Path(Vec<(String, bool)>);

impl Path {
    fn enter(&mut self, name: &str, container_type: &str) {
        self.0
            .push((name.to_string(), container_type.starts_with("Enum:")));
    }

    fn exit(&mut self) {
        self.0.pop();
    }

    /// The name in the file: variants left out.
    fn stored(&self) -> String {
        let parts: Vec<&str> = self
            .0
            .iter()
            .filter(|(_, variant)| !variant)
            .map(|(name, _)| name.as_str())
            .collect();
        parts.join(".")
    }

    /// Burn's module path, variants included.
    fn module(&self) -> String {
        let parts: Vec<&str> = self.0.iter().map(|(name, _)| name.as_str()).collect();
        parts.join(".")
    }
}

#[derive(Default)]
struct Collect {
    path: Path,
    entries: Vec<Entry>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.transform_for_save().val();
        let shape = value.dims().to_vec();
        let n: usize = shape.iter().product();
        self.entries.push(Entry {
            path: self.path.stored(),
            id: param.id,
            shape,
            value: value.reshape([n]),
        });
    }
}

/// Maps each stored name of a model's parameters to its module path and shape.
#[derive(Default)]
struct Names {
    path: Path,
    names: std::collections::BTreeMap<String, (String, Vec<usize>)>,
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // The shape without initialising the parameter: a freshly built model allocates
        // nothing for its weights until they are used or loaded.
        let shape = param.lazy_shape().to_vec();
        self.names
            .insert(self.path.stored(), (self.path.module(), shape));
    }
}

fn collect(model: &ResNet) -> Result<Vec<Entry>, WeightsError> {
    if model.is_fused() {
        return Err(WeightsError::Fused);
    }
    let mut visitor = Collect::default();
    model.visit(&mut visitor);
    Ok(visitor.entries)
}

fn pack(entries: Vec<(Entry, TensorData)>, precision: Precision) -> Result<Vec<u8>, WeightsError> {
    let tensors = entries
        .into_iter()
        .map(|(entry, data)| {
            let data = data.convert_dtype(precision.dtype());
            burn_pack::Tensor::new(
                entry.path,
                precision.dtype(),
                entry.shape,
                Some(entry.id.val()),
                data.into_bytes(),
            )
        })
        .collect();
    let bytes = burn_pack::Writer::new(tensors)
        .into_bytes()
        .map_err(|e| WeightsError::Format(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// Serialises the parameters, reading them synchronously (CPU backends, native wgpu).
pub fn to_bytes(model: &ResNet, precision: Precision) -> Result<Vec<u8>, WeightsError> {
    let entries = collect(model)?
        .into_iter()
        .map(|e| {
            let data = e.value.clone().into_data();
            (e, data)
        })
        .collect();
    pack(entries, precision)
}

/// Serialises the parameters with async reads (required on WebGPU).
pub async fn to_bytes_async(model: &ResNet, precision: Precision) -> Result<Vec<u8>, WeightsError> {
    let mut entries = Vec::new();
    for e in collect(model)? {
        let data = e
            .value
            .clone()
            .into_data_async()
            .await
            .map_err(|err| WeightsError::Read(format!("{err:?}")))?;
        entries.push((e, data));
    }
    pack(entries, precision)
}

/// Builds the model described by `config` on `device` and loads `bytes` into it.
///
/// Every tensor the file declares is checked before any of it is read: its name, float type
/// and shape against the model's (which `config` bounds), its byte range against the file
/// (burnpack's reader). A file with a tensor too many or too few is refused. The model's own
/// parameters are built lazily and never allocated for a file that is refused, so loading
/// allocates little beyond the file itself, whatever it claims.
pub fn from_bytes(
    bytes: Vec<u8>,
    config: &ResNetConfig,
    device: &Device,
) -> Result<ResNet, WeightsError> {
    let format = |e: burn_pack::Error| WeightsError::Format(e.to_string());
    let mismatch = |detail: String| WeightsError::Mismatch {
        model: config.name(),
        detail,
    };
    let model = config.init(device);
    let mut names = Names::default();
    model.visit(&mut names);
    let mut tensors = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(format)?
        .into_tensors()
        .map_err(format)?;
    let mut seen = std::collections::BTreeSet::new();
    for t in &mut tensors {
        let Some((path, shape)) = names.names.get(&t.name) else {
            return Err(mismatch(format!(
                "the file has a tensor {:?} that the model does not",
                t.name
            )));
        };
        if !matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(mismatch(format!(
                "{} is stored as {:?}, not as floats",
                t.name, t.dtype
            )));
        }
        if t.shape.to_vec() != *shape {
            return Err(mismatch(format!(
                "{} has shape {:?} in the file, {:?} in the model",
                t.name,
                t.shape.to_vec(),
                shape
            )));
        }
        seen.insert(t.name.clone());
        t.name.clone_from(path);
    }
    if let Some(missing) = names.names.keys().find(|n| !seen.contains(*n)) {
        return Err(mismatch(format!("the file lacks {missing}")));
    }
    let renamed = burn_pack::Writer::new(tensors)
        .into_bytes()
        .map_err(format)?;
    let record = ModuleRecord::from_bytes(renamed)
        .map_err(|e| WeightsError::Format(e.to_string()))?
        .cast_to_module_dtype();
    model
        .try_load_record(record)
        .map_err(|e| mismatch(e.to_string()))
}
