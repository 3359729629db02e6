//! `POST /v1/embeddings` and `GET /v1/models`, in the shape of OpenAI's
//! API, so an application that uses the `openai` client (or LangChain's
//! `OpenAIEmbeddings`) points `base_url` at Quarry and changes nothing else.
//!
//! The official client asks for base64 by default (little-endian f32s),
//! which is also the cheaper answer to produce and parse.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use quarry_engine::service::{EmbedInput, MAX_EMBED_INPUTS, ModelEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::St;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;

/// `input`: a string, an array of strings, an array of token ids, or an
/// array of such arrays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingsInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    #[default]
    Float,
    /// The vector's f32s, little-endian, in base64.
    Base64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsBody {
    /// Token ids are the text's tokens without special tokens; they are
    /// truncated and wrapped in the model's special tokens as text is.
    pub input: EmbeddingsInput,
    /// A model in the model cache (see `GET /v1/models`); default: the
    /// model the server searches with.
    pub model: Option<String>,
    #[serde(default)]
    pub encoding_format: EncodingFormat,
    /// Accepted only when it equals the model's dimension: Quarry does not
    /// shorten vectors.
    #[schema(minimum = 1)]
    pub dimensions: Option<usize>,
    /// Accepted and ignored, as OpenAI uses it only for abuse monitoring.
    #[allow(dead_code)]
    pub user: Option<String>,
}

/// One vector: an array of numbers, or a base64 string.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingItem {
    /// Always `embedding`.
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vector,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Tokens the model saw: after truncation, special tokens included.
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EmbeddingItem>,
    pub model: String,
    pub usage: Usage,
}

fn input_of(input: EmbeddingsInput) -> EmbedInput {
    match input {
        EmbeddingsInput::Text(t) => EmbedInput::Texts(vec![t]),
        EmbeddingsInput::Texts(t) => EmbedInput::Texts(t),
        EmbeddingsInput::Tokens(ids) => EmbedInput::TokenIds(vec![ids]),
        EmbeddingsInput::TokenLists(lists) => EmbedInput::TokenIds(lists),
    }
}

fn base64_of(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Embeddings, compatible with OpenAI's `POST /v1/embeddings`.
#[utoipa::path(post, path = "/v1/embeddings", request_body = EmbeddingsBody,
    responses((status = 200, body = EmbeddingsResponse), (status = "4XX", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn embeddings(
    State(state): St,
    JsonBody(body): JsonBody<EmbeddingsBody>,
) -> Result<Json<EmbeddingsResponse>, ApiError> {
    let input = input_of(body.input);
    if input.len() > MAX_EMBED_INPUTS {
        return Err(ApiError::TooLargeBatch(format!(
            "input has {} items; at most {MAX_EMBED_INPUTS} may be embedded in one request: \
             split it",
            input.len()
        )));
    }
    let embedded = state.service.embed(body.model.as_deref(), &input).await?;
    let dimension = embedded.embeddings.first().map_or(0, |e| e.embedding.len());
    if let Some(asked) = body.dimensions
        && asked != dimension
    {
        return Err(ApiError::BadRequest(format!(
            "dimensions = {asked}, but {} makes {dimension}-dimensional vectors and Quarry does \
             not shorten them: leave dimensions out or set it to {dimension}",
            embedded.model
        )));
    }
    let prompt_tokens = embedded.embeddings.iter().map(|e| e.tokens).sum();
    let data = embedded
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: match body.encoding_format {
                EncodingFormat::Float => Vector::Float(e.embedding),
                EncodingFormat::Base64 => Vector::Base64(base64_of(&e.embedding)),
            },
        })
        .collect();
    Ok(Json(EmbeddingsResponse {
        object: "list",
        data,
        model: embedded.model,
        usage: Usage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    /// The model the server searches with (a Quarry extension).
    pub default: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

/// The models a request may name: the server's own, then the model cache.
#[utoipa::path(get, path = "/v1/models",
    responses((status = 200, body = ModelsResponse), (status = "4XX", body = ErrorBody)))]
pub(crate) async fn models(State(state): St) -> Json<ModelsResponse> {
    let data = state
        .service
        .models()
        .into_iter()
        .map(
            |ModelEntry {
                 id,
                 created,
                 default,
             }| ModelObject {
                id,
                object: "model",
                created,
                owned_by: "quarry",
                default,
            },
        )
        .collect();
    Json(ModelsResponse {
        object: "list",
        data,
    })
}
