//! The batching worker.
//!
//! Modelled on text-embeddings-inference's queue: one owner thread runs the
//! model, so the network is never shared or locked, and batching happens in
//! one place. Callers tokenize on their own threads, enqueue one job per
//! input and wait on a oneshot channel per job.
//!
//! Batches are bounded by *padded* tokens (inputs × longest input), which is
//! what a forward pass actually costs in time and memory; a plain batch size
//! would let one long input blow up a batch of short ones. A batch holds one
//! priority only: interactive queries are always taken first and are never
//! padded up to a bulk document's length. A query that arrives while a bulk
//! batch runs does not wait for all of it: the fast encoder stops between
//! layers, runs the waiting queries, and carries on, so a query waits for
//! at most one layer of bulk work.
//!
//! Both queues are bounded. Bulk callers (sync) wait for room, which is the
//! back-pressure that keeps a sync's memory flat. Interactive callers are not
//! made to wait behind an unbounded backlog: they get [`EmbedError::Overloaded`]
//! at once, which the server reports as 503.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use quarry_core::EmbedConfig;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::cross::CrossEncoderLayout;
use crate::model::{Fingerprint, Model, Network, TextSide};
use crate::{EmbedError, Result};

/// Who is waiting for the vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A user is waiting (search). Goes first; fails fast when overloaded.
    Interactive,
    /// Indexing work. Waits for room in the queue.
    Bulk,
}

/// Which prompt, if the model has one, is prepended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Query,
    Passage,
    /// No prefix: what `quarry embed` and sentence-transformers' plain
    /// `encode` do.
    Raw,
}

/// One input's vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding {
    pub embedding: Vec<f32>,
    /// Token ids fed to the model, after truncation, special tokens included.
    pub tokens: usize,
    pub truncated: bool,
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Default, Clone, Serialize)]
pub struct EmbedderStats {
    pub batches: u64,
    pub inputs: u64,
    /// Real tokens embedded.
    pub tokens: u64,
    /// Tokens including padding: `padded_tokens / tokens` is the waste.
    pub padded_tokens: u64,
    pub largest_batch: u64,
    pub queued_interactive: usize,
    pub queued_bulk: usize,
    /// Query batches that ran between the layers of a bulk batch.
    pub queries_between_layers: u64,
}

struct Job {
    ids: Vec<u32>,
    /// A pair's second text starts here (a cross-encoder's input).
    second: Option<usize>,
    reply: oneshot::Sender<Result<Vec<f32>>>,
    // Held until the job leaves the queue; frees a bulk slot.
    _slot: Option<OwnedSemaphorePermit>,
}

#[derive(Default)]
struct Queues {
    interactive: VecDeque<Job>,
    bulk: VecDeque<Job>,
    closed: bool,
    /// When the last query came in: while queries keep coming, bulk
    /// batches stay short (see [`bulk_budget`]).
    last_interactive: Option<Instant>,
}

/// How recent a query must be for bulk batches to stay short.
const QUERY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// The token budget of the next bulk batch. A query that arrives while a
/// bulk batch runs waits for all of it, so while queries are coming in,
/// bulk batches get `busy_bulk_batch_tokens`, by default a quarter of
/// `max_batch_tokens` (and bulk throughput,
/// which gains little from larger batches, barely moves); otherwise the
/// whole budget.
fn bulk_budget(q: &Queues, config: &EmbedConfig) -> usize {
    let busy = q
        .last_interactive
        .is_some_and(|t| t.elapsed() < QUERY_WINDOW);
    if busy {
        config
            .busy_bulk_batch_tokens
            .unwrap_or(config.max_batch_tokens / 4)
            .max(1)
    } else {
        config.max_batch_tokens
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    inputs: AtomicU64,
    tokens: AtomicU64,
    padded_tokens: AtomicU64,
    largest_batch: AtomicU64,
    queued_interactive: AtomicUsize,
    queued_bulk: AtomicUsize,
    /// Query batches run between a bulk batch's layers.
    lane: AtomicU64,
}

impl Counters {
    fn queued(&self, q: &Queues) {
        self.queued_interactive
            .store(q.interactive.len(), Ordering::Relaxed);
        self.queued_bulk.store(q.bulk.len(), Ordering::Relaxed);
    }
}

struct Shared {
    queues: Mutex<Queues>,
    work: Condvar,
    bulk_slots: Arc<Semaphore>,
    config: EmbedConfig,
    counters: Counters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding this lock cannot leave the queues half-updated
        // (every critical section is a push or a pop), so poisoning is ignored.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Closes the queue when the last [`Embedder`] handle goes away, so the owner
/// thread drains what is left and exits.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.work.notify_all();
    }
}

/// A cheap, cloneable handle to the embedding worker.
#[derive(Clone)]
pub struct Embedder {
    shared: Arc<Shared>,
    pub(crate) text: Arc<TextSide>,
    pub(crate) fingerprint: Arc<Fingerprint>,
    /// Set when the model is a cross-encoder: it scores pairs and cannot
    /// embed.
    pub(crate) cross: Option<Arc<CrossEncoderLayout>>,
    _close: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Embedder({})", self.fingerprint.model_id)
    }
}

impl Embedder {
    /// Moves the model onto its own thread and returns a handle.
    pub fn start(model: Model, config: EmbedConfig) -> Result<Self> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            work: Condvar::new(),
            bulk_slots: Arc::new(Semaphore::new(config.bulk_queue)),
            config,
            counters: Counters::default(),
        });
        let Model {
            text,
            net,
            fingerprint,
            layout,
        } = model;
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("quarry-embed".into())
            .spawn(move || run(&worker, &net))
            .map_err(|e| EmbedError::Fetch(format!("cannot start the embedding thread: {e}")))?;
        Ok(Self {
            _close: Arc::new(CloseOnDrop(Arc::clone(&shared))),
            shared,
            text,
            fingerprint: Arc::new(fingerprint),
            cross: layout.cross_encoder.map(Arc::new),
        })
    }

    /// Set when the model is a cross-encoder (a reranker).
    pub fn cross_encoder(&self) -> Option<&CrossEncoderLayout> {
        self.cross.as_deref()
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    pub fn dimension(&self) -> usize {
        self.fingerprint.dimension
    }

    pub fn stats(&self) -> EmbedderStats {
        let c = &self.shared.counters;
        EmbedderStats {
            batches: c.batches.load(Ordering::Relaxed),
            inputs: c.inputs.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
            padded_tokens: c.padded_tokens.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
            queued_interactive: c.queued_interactive.load(Ordering::Relaxed),
            queued_bulk: c.queued_bulk.load(Ordering::Relaxed),
            queries_between_layers: c.lane.load(Ordering::Relaxed),
        }
    }

    /// Counts the tokens `text` becomes for `kind`, after truncation.
    pub fn count_tokens(&self, text: &str, kind: InputKind) -> Result<usize> {
        Ok(self.text.tokenize(text, self.prefix(kind))?.ids.len())
    }

    fn prefix(&self, kind: InputKind) -> Option<&str> {
        match kind {
            InputKind::Query => self.text.query_prefix.as_deref(),
            InputKind::Passage => self.text.passage_prefix.as_deref(),
            InputKind::Raw => None,
        }
    }

    /// Embeds `texts`, in order. Tokenization runs on the calling thread;
    /// callers with very long inputs on an async runtime should call this
    /// from a blocking-capable context or keep inputs chunked.
    pub async fn embed<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: InputKind,
        priority: Priority,
    ) -> Result<Vec<Embedding>> {
        let mut inputs = Vec::with_capacity(texts.len());
        for text in texts {
            inputs.push(self.text.tokenize(text.as_ref(), self.prefix(kind))?);
        }
        self.embed_inputs(inputs, priority).await
    }

    /// Embeds inputs given as token ids without special tokens (the
    /// OpenAI API's `input: [[ids]]`); they are truncated and wrapped like
    /// text.
    pub async fn embed_token_ids(
        &self,
        ids: &[Vec<u32>],
        priority: Priority,
    ) -> Result<Vec<Embedding>> {
        let mut inputs = Vec::with_capacity(ids.len());
        for one in ids {
            inputs.push(self.text.wrap_ids(one)?);
        }
        self.embed_inputs(inputs, priority).await
    }

    async fn embed_inputs(
        &self,
        inputs: Vec<crate::model::TokenizedInput>,
        priority: Priority,
    ) -> Result<Vec<Embedding>> {
        if self.cross.is_some() {
            return Err(EmbedError::Unsupported(format!(
                "model {} is a cross-encoder (a reranker): it scores pairs and cannot embed; set \
                 [model] id to an embedding model and use the cross-encoder for reranking",
                self.fingerprint.model_id
            )));
        }
        self.run_inputs(inputs, priority).await
    }

    pub(crate) async fn run_inputs(
        &self,
        inputs: Vec<crate::model::TokenizedInput>,
        priority: Priority,
    ) -> Result<Vec<Embedding>> {
        // Longest first, so consecutive jobs, and thus batches, have similar
        // lengths and little padding.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(inputs[i].ids.len()));

        let mut waiting = Vec::with_capacity(order.len());
        match priority {
            Priority::Interactive => {
                let mut q = self.shared.lock();
                if q.closed {
                    return Err(EmbedError::Closed);
                }
                q.last_interactive = Some(Instant::now());
                if q.interactive.len() + order.len() > self.shared.config.interactive_queue {
                    return Err(EmbedError::Overloaded);
                }
                for &i in &order {
                    let (reply, rx) = oneshot::channel();
                    q.interactive.push_back(Job {
                        ids: inputs[i].ids.clone(),
                        second: inputs[i].second,
                        reply,
                        _slot: None,
                    });
                    waiting.push((i, rx));
                }
                self.shared
                    .counters
                    .queued_interactive
                    .store(q.interactive.len(), Ordering::Relaxed);
                drop(q);
                self.shared.work.notify_one();
            }
            Priority::Bulk => {
                for &i in &order {
                    let slot = Arc::clone(&self.shared.bulk_slots)
                        .acquire_owned()
                        .await
                        .map_err(|_| EmbedError::Closed)?;
                    let (reply, rx) = oneshot::channel();
                    let mut q = self.shared.lock();
                    if q.closed {
                        return Err(EmbedError::Closed);
                    }
                    q.bulk.push_back(Job {
                        ids: inputs[i].ids.clone(),
                        second: inputs[i].second,
                        reply,
                        _slot: Some(slot),
                    });
                    self.shared
                        .counters
                        .queued_bulk
                        .store(q.bulk.len(), Ordering::Relaxed);
                    drop(q);
                    self.shared.work.notify_one();
                    waiting.push((i, rx));
                }
            }
        }

        let mut out: Vec<Option<Embedding>> = vec![None; inputs.len()];
        for (i, rx) in waiting {
            let vector = rx.await.map_err(|_| EmbedError::Closed)??;
            out[i] = Some(Embedding {
                embedding: vector,
                tokens: inputs[i].ids.len(),
                truncated: inputs[i].truncated,
            });
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Embeds one query at interactive priority.
    pub async fn embed_query(&self, text: &str) -> Result<Embedding> {
        let mut v = self
            .embed(&[text], InputKind::Query, Priority::Interactive)
            .await?;
        v.pop().ok_or(EmbedError::Closed)
    }
}

/// The owner thread: waits for work, forms a batch, runs it, replies.
fn run(shared: &Shared, net: &Network) {
    loop {
        let (batch, bulk) = {
            let mut q = shared.lock();
            while q.interactive.is_empty() && q.bulk.is_empty() && !q.closed {
                q = shared.work.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.interactive.is_empty() && q.bulk.is_empty() {
                return; // closed and drained
            }
            let bulk = q.interactive.is_empty();
            let batch = if bulk {
                let budget = bulk_budget(&q, &shared.config);
                take_batch(&mut q.bulk, budget, shared.config.max_batch_size)
            } else {
                let budget = shared.config.max_batch_tokens;
                take_batch(&mut q.interactive, budget, shared.config.max_batch_size)
            };
            shared.counters.queued(&q);
            (batch, bulk)
        };
        run_batch(shared, net, batch, bulk);
    }
}

/// Runs one batch and replies to its callers. A bulk batch lets the
/// queries that arrive meanwhile run between its encoder layers (see
/// [`serve_waiting_queries`]).
fn run_batch(shared: &Shared, net: &Network, batch: Vec<Job>, bulk: bool) {
    // A caller that gave up (its future was dropped) needs no answer.
    let mut batch: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
    if batch.is_empty() {
        return;
    }
    batch.sort_by_key(|j| j.ids.len());
    let started = Instant::now();
    let seqs: Vec<&[u32]> = batch.iter().map(|j| j.ids.as_slice()).collect();
    let segments: Option<Vec<usize>> = batch.iter().any(|j| j.second.is_some()).then(|| {
        batch
            .iter()
            .map(|j| j.second.unwrap_or(j.ids.len()))
            .collect()
    });
    let pause = || serve_waiting_queries(shared, net);
    let result = net.forward_pausing(&seqs, segments.as_deref(), bulk.then_some(&pause));
    record(shared, &seqs);
    tracing::trace!(
        inputs = seqs.len(),
        bulk,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "batch"
    );
    match result {
        Ok(vectors) => {
            for (job, v) in batch.into_iter().zip(vectors) {
                let _ = job.reply.send(Ok(v));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for job in batch {
                let _ = job.reply.send(Err(EmbedError::Fetch(format!(
                    "embedding failed: {message}"
                ))));
            }
        }
    }
}

/// Called between the layers of a bulk batch: runs every query waiting,
/// so a query waits for one layer of bulk work instead of a whole batch
/// (the queries' own lane through the encoder). The bulk batch's state
/// stays where it is and it carries on after.
fn serve_waiting_queries(shared: &Shared, net: &Network) {
    loop {
        let batch = {
            let mut q = shared.lock();
            if q.interactive.is_empty() {
                return;
            }
            let batch = take_batch(
                &mut q.interactive,
                shared.config.max_batch_tokens,
                shared.config.max_batch_size,
            );
            shared.counters.queued(&q);
            batch
        };
        shared.counters.lane.fetch_add(1, Ordering::Relaxed);
        run_batch(shared, net, batch, false);
    }
}

/// Takes jobs from the front while the padded batch stays within
/// `max_tokens` and `max_size`. The first job is always taken, so an input
/// longer than the budget still runs (alone).
fn take_batch(queue: &mut VecDeque<Job>, max_tokens: usize, max_size: usize) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let mut longest = 0;
    while let Some(next) = queue.front() {
        let len = next.ids.len().max(longest);
        let fits = batch.len() < max_size && (batch.len() + 1) * len <= max_tokens;
        if !batch.is_empty() && !fits {
            break;
        }
        longest = len;
        batch.extend(queue.pop_front());
    }
    batch
}

fn record(shared: &Shared, seqs: &[&[u32]]) {
    let c = &shared.counters;
    let real: usize = seqs.iter().map(|s| s.len()).sum();
    let padded = seqs.iter().map(|s| s.len()).max().unwrap_or(0) * seqs.len();
    c.batches.fetch_add(1, Ordering::Relaxed);
    c.inputs.fetch_add(seqs.len() as u64, Ordering::Relaxed);
    c.tokens.fetch_add(real as u64, Ordering::Relaxed);
    c.padded_tokens.fetch_add(padded as u64, Ordering::Relaxed);
    c.largest_batch
        .fetch_max(seqs.len() as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests;
