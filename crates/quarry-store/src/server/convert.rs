//! Ids, payloads and vectors between Quarry's types and gRPC's.

use std::collections::HashMap;

use qdrant_client::qdrant::{self as q, with_vectors_selector};
use quarry_core::PointId;
use quarry_core::payload::ChunkPayload;

use super::STAGED;
use crate::{DENSE, IndexSettings, Quantization, Result, StoreError};

pub(super) fn to_qid(id: PointId) -> q::PointId {
    q::PointId::from(uuid::Uuid::from_u128(id.0).to_string())
}

pub(super) fn from_qid(id: Option<&q::PointId>) -> Result<PointId> {
    match id.and_then(|i| i.point_id_options.as_ref()) {
        Some(q::point_id::PointIdOptions::Uuid(s)) => uuid::Uuid::parse_str(s)
            .map(|u| PointId(u.as_u128()))
            .map_err(|e| StoreError::Invalid(format!("point id {s:?}: {e}"))),
        Some(q::point_id::PointIdOptions::Num(n)) => Ok(PointId(u128::from(*n))),
        None => Err(StoreError::Invalid(
            "a point came back without an id".into(),
        )),
    }
}

pub(super) fn payload_of(p: HashMap<String, q::Value>) -> ChunkPayload {
    ChunkPayload::from_map(
        p.into_iter()
            .filter(|(k, _)| k != STAGED)
            .map(|(k, v)| (k, v.into_json()))
            .collect(),
    )
}

pub(super) fn dense_of(v: Option<q::VectorsOutput>) -> Option<Vec<f32>> {
    use q::vectors_output::VectorsOptions;
    let out = match v?.vectors_options? {
        VectorsOptions::Vector(v) => v,
        VectorsOptions::Vectors(mut named) => named.vectors.remove(DENSE)?,
    };
    match out.into_vector() {
        q::vector_output::Vector::Dense(d) => Some(d.data),
        _ => None,
    }
}

pub(super) fn vectors_selector(with_vectors: bool) -> with_vectors_selector::SelectorOptions {
    if with_vectors {
        with_vectors_selector::SelectorOptions::Include(q::VectorsSelector {
            names: vec![DENSE.into()],
        })
    } else {
        with_vectors_selector::SelectorOptions::Enable(false)
    }
}

/// The dense vector's parameters: its HNSW graph and quantization, as
/// `[index]` set them when the collection was created.
pub(super) fn dense_params(dimension: usize, index: &IndexSettings) -> q::VectorParamsBuilder {
    let mut dense = q::VectorParamsBuilder::new(dimension as u64, q::Distance::Cosine)
        .hnsw_config(
            q::HnswConfigDiffBuilder::default()
                .m(index.m as u64)
                .ef_construct(index.ef_construct as u64)
                .full_scan_threshold(index.full_scan_threshold_kb as u64),
        )
        .on_disk(index.on_disk);
    if index.quantization == Quantization::Int8 {
        dense = dense.quantization_config(
            q::ScalarQuantizationBuilder::default()
                .r#type(q::QuantizationType::Int8.into())
                .quantile(0.99)
                .always_ram(true),
        );
    }
    dense
}

/// What a search of a collection with `index` asks of the graph.
pub(super) fn search_params(
    index: &IndexSettings,
    exact: bool,
    ef: Option<usize>,
) -> q::SearchParams {
    let mut params = q::SearchParamsBuilder::default()
        .hnsw_ef(ef.unwrap_or(index.ef) as u64)
        .exact(exact);
    if index.quantization != Quantization::None {
        params = params.quantization(
            q::QuantizationSearchParamsBuilder::default()
                .rescore(index.rescore)
                .oversampling(index.oversampling),
        );
    }
    params.build()
}
