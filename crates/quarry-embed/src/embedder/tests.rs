use super::*;

fn job(len: usize) -> Job {
    Job {
        ids: vec![1; len],
        second: None,
        reply: oneshot::channel().0,
        _slot: None,
    }
}

#[test]
fn bulk_batches_stay_short_while_queries_come_in() {
    let config = EmbedConfig::default();
    let mut q = Queues::default();
    assert_eq!(bulk_budget(&q, &config), config.max_batch_tokens);
    q.last_interactive = Some(Instant::now());
    assert_eq!(bulk_budget(&q, &config), config.max_batch_tokens / 4);
    q.last_interactive = Instant::now().checked_sub(QUERY_WINDOW * 2);
    assert_eq!(bulk_budget(&q, &config), config.max_batch_tokens);
    // 16 inputs of 64 tokens: one batch of 16 on the whole budget, four
    // of 4 on a quarter.
    let mut bulk: VecDeque<Job> = (0..16).map(|_| job(64)).collect();
    assert_eq!(take_batch(&mut bulk, 1024, 64).len(), 16);
    let mut bulk: VecDeque<Job> = (0..16).map(|_| job(64)).collect();
    assert_eq!(take_batch(&mut bulk, 256, 64).len(), 4);
    // An input longer than the budget still runs, alone.
    let mut long: VecDeque<Job> = [job(600), job(10)].into_iter().collect();
    assert_eq!(take_batch(&mut long, 256, 64).len(), 1);
}
