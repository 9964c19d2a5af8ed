//! Conformance of processors and processing jobs on each backend: the
//! processor resource (one name per tenant, tenant isolation, toggling),
//! and the job queue (critical first, leases, the claim token, retries,
//! dead letters, redrive, discard, results).

use std::time::Duration;

use herald_core::{EventId, TenantId, Timestamp};
use herald_store::*;
use herald_testkit::on_each_backend;
use serde_json::json;

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

on_each_backend!(
    open = open;
    a_processor_round_trips_its_name_is_unique_and_other_tenants_cannot_see_it,
    jobs_are_claimed_critical_first_then_in_commit_order_and_once_per_lease,
    a_finish_applies_only_under_the_newest_claim_and_records_results,
    a_dead_job_is_listed_redriven_with_its_schedule_restarted_and_discarded,
);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn later(t: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from(t.as_offset_date_time() + time::Duration::seconds(secs))
}

fn event_ids(n: usize) -> Vec<EventId> {
    (0..n)
        .map(|i| EventId::parse(&format!("0190f5b2-7c3a-7b4e-9a1d-{:012x}", i + 1)).unwrap())
        .collect()
}

fn spec(name: &str, priority: i64) -> ProcessorSpec {
    ProcessorSpec {
        processor_name: name.into(),
        processor_type: "enrich".into(),
        enabled: true,
        priority,
        filters: json!({"event_types": ["order.*"]}),
        config: json!({"fields": {"n": "1"}}),
        retry_policy: json!({"schedule": [5]}),
        critical: false,
    }
}

fn processor(t: &TenantId, id: &str, spec: ProcessorSpec) -> Processor {
    Processor {
        processor_id: id.into(),
        tenant_id: t.clone(),
        spec,
        secret: None,
        created_at: at("2026-01-02T03:04:05.123456Z"),
        updated_at: at("2026-01-02T03:04:05.123456Z"),
    }
}

fn job(t: &TenantId, id: EventId, seq: i64, priority: i64, due: Timestamp) -> NewProcessingJob {
    NewProcessingJob {
        tenant_id: t.clone(),
        event_id: id,
        seq,
        event_type: "order.placed".into(),
        priority,
        due_at: due,
    }
}

fn result(pid: &str, status: ResultStatus, attempt: i64, when: Timestamp) -> ProcessorResult {
    ProcessorResult {
        processor_id: pid.into(),
        processor_name: format!("name-{pid}"),
        processor_type: "enrich".into(),
        priority: 1,
        status,
        attempt,
        duration_ms: 1.5,
        result: (status == ResultStatus::Success).then(|| json!({"n": attempt})),
        error: (status == ResultStatus::Failed).then(|| "boom".to_string()),
        finished_at: when,
    }
}

fn finish(
    c: &ClaimedJob,
    outcome: JobOutcome,
    results: Vec<ProcessorResult>,
    when: Timestamp,
) -> JobFinish {
    JobFinish {
        job_id: c.job.job_id.clone(),
        tenant_id: c.job.tenant_id.clone(),
        event_id: c.job.event_id,
        claim: c.job.attempts,
        attempt_base: c.job.attempt_base,
        outcome,
        results,
        duration_ms: 1.5,
        last_error: Some("boom".into()),
        finished_at: when,
        category: "business".into(),
        event_type: "order.placed".into(),
    }
}

const LEASE: Duration = Duration::from_secs(60);

async fn a_processor_round_trips_its_name_is_unique_and_other_tenants_cannot_see_it(o: Opened) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let p = processor(&acme, "prc_1", spec("risk", 10));
    o.store.insert_processor(p.clone()).await.unwrap();
    assert_eq!(
        o.store.get_processor(&acme, "prc_1").await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(o.store.get_processor(&globex, "prc_1").await.unwrap(), None);
    let taken = o
        .store
        .insert_processor(processor(&acme, "prc_2", spec("risk", 1)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            taken,
            StoreError::Conflict(ConflictReason::ProcessorNameExists { .. })
        ),
        "{taken:?}"
    );
    // The same name in another tenant is fine.
    o.store
        .insert_processor(processor(&globex, "prc_3", spec("risk", 1)))
        .await
        .unwrap();
    o.store
        .insert_processor(processor(&acme, "prc_4", spec("tag", 99)))
        .await
        .unwrap();

    // Renaming onto a taken name conflicts; toggling flips `enabled`.
    let now = at("2026-01-03T00:00:00Z");
    let err = o
        .store
        .update_processor(&acme, "prc_4", spec("risk", 99), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let off = o
        .store
        .set_processor_enabled(&acme, "prc_1", false, now)
        .await
        .unwrap()
        .unwrap();
    assert!(!off.spec.enabled);
    assert_eq!(off.updated_at, now);
    assert_eq!(
        o.store
            .set_processor_enabled(&globex, "prc_1", true, now)
            .await
            .unwrap(),
        None
    );

    // Enabled ones of every tenant, highest priority first.
    let enabled: Vec<String> = o
        .store
        .enabled_processors()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.processor_id)
        .collect();
    assert_eq!(enabled, ["prc_4", "prc_3"]);
    let page = o.store.list_processors(&acme, None, 1, None).await.unwrap();
    assert_eq!(page.processors.len(), 1);
    assert_eq!(page.next_cursor.as_deref(), Some("prc_1"));
    let rest = o
        .store
        .list_processors(&acme, None, 10, page.next_cursor)
        .await
        .unwrap();
    assert_eq!(rest.processors[0].processor_id, "prc_4");
    assert!(rest.next_cursor.is_none());
    let disabled = o
        .store
        .list_processors(&acme, Some(false), 10, None)
        .await
        .unwrap();
    assert_eq!(disabled.processors.len(), 1);

    assert!(!o.store.delete_processor(&globex, "prc_1").await.unwrap());
    assert!(o.store.delete_processor(&acme, "prc_1").await.unwrap());
    assert_eq!(o.store.get_processor(&acme, "prc_1").await.unwrap(), None);
}

async fn jobs_are_claimed_critical_first_then_in_commit_order_and_once_per_lease(o: Opened) {
    let t = tenant("acme");
    let ids = event_ids(5);
    let t0 = at("2026-01-02T03:00:00Z");
    let jobs = vec![
        job(&t, ids[0], 1, 0, t0),
        job(&t, ids[1], 2, 0, t0),
        job(&t, ids[2], 3, 1, t0),
        job(&t, ids[3], 4, 0, later(t0, 60)),
        job(&t, ids[4], 5, 1, t0),
    ];
    o.store.queue_processing(jobs.clone()).await.unwrap();
    // Queuing again adds nothing.
    o.store.queue_processing(jobs).await.unwrap();
    assert_eq!(o.store.processing_backlog().await.unwrap(), 5);

    let first = o.store.claim_processing(3, t0, LEASE).await.unwrap();
    let got: Vec<EventId> = first.iter().map(|c| c.job.event_id).collect();
    assert_eq!(got, [ids[2], ids[4], ids[0]], "critical first, then by seq");
    assert!(
        first
            .iter()
            .all(|c| c.job.attempts == 1 && c.job.state == JobState::InFlight)
    );
    // The rest that is due; the one due later is not yet.
    let second = o.store.claim_processing(10, t0, LEASE).await.unwrap();
    let got: Vec<EventId> = second.iter().map(|c| c.job.event_id).collect();
    assert_eq!(got, [ids[1]]);
    assert!(
        o.store
            .claim_processing(10, later(t0, 59), LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    // Past the lease every claim lapses and all five are claimable again.
    let again = o
        .store
        .claim_processing(10, later(t0, 61), LEASE)
        .await
        .unwrap();
    assert_eq!(again.len(), 5, "{again:?}");
    let lapsed = again.iter().find(|c| c.job.event_id == ids[2]).unwrap();
    assert_eq!(lapsed.job.attempts, 2, "a new claim, a new token");
}

async fn a_finish_applies_only_under_the_newest_claim_and_records_results(o: Opened) {
    let t = tenant("acme");
    let ids = event_ids(2);
    let t0 = at("2026-01-02T03:00:00Z");
    o.store
        .queue_processing(vec![job(&t, ids[0], 1, 0, t0), job(&t, ids[1], 2, 0, t0)])
        .await
        .unwrap();
    let old = o.store.claim_processing(10, t0, LEASE).await.unwrap();
    let new = o
        .store
        .claim_processing(10, later(t0, 61), LEASE)
        .await
        .unwrap();
    // The lapsed claim's finish changes nothing.
    let stale = finish(
        &old[0],
        JobOutcome::Processed,
        vec![result("prc_a", ResultStatus::Success, 1, t0)],
        t0,
    );
    assert_eq!(
        o.store
            .finish_processing_jobs(vec![stale], false)
            .await
            .unwrap(),
        [false]
    );
    assert!(
        o.store
            .processing_results(&[ids[0]])
            .await
            .unwrap()
            .is_empty()
    );

    // The newest claim's: one fails (retried later), one is processed.
    let t1 = later(t0, 62);
    let failing = new.iter().find(|c| c.job.event_id == ids[0]).unwrap();
    let passing = new.iter().find(|c| c.job.event_id == ids[1]).unwrap();
    let applied = o
        .store
        .finish_processing_jobs(
            vec![
                finish(
                    failing,
                    JobOutcome::RetryAt(later(t1, 5)),
                    vec![
                        result("prc_a", ResultStatus::Success, 2, t1),
                        result("prc_b", ResultStatus::Failed, 2, t1),
                    ],
                    t1,
                ),
                finish(
                    passing,
                    JobOutcome::Processed,
                    vec![result("prc_a", ResultStatus::Success, 2, t1)],
                    t1,
                ),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(applied, [true, true]);
    let results = o.store.processing_results(&ids).await.unwrap();
    assert_eq!(results[&ids[0]].len(), 2);
    assert_eq!(results[&ids[0]][1].status, ResultStatus::Failed);
    assert_eq!(results[&ids[0]][1].error.as_deref(), Some("boom"));
    assert_eq!(results[&ids[1]][0].result, Some(json!({"n": 2})));
    assert_eq!(
        o.store.processing_backlog().await.unwrap(),
        1,
        "the processed job is gone"
    );
    // The retry is due at its time, not before, with its earlier results.
    assert!(
        o.store
            .claim_processing(10, later(t1, 4), LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = o
        .store
        .claim_processing(10, later(t1, 5), LEASE)
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].results.len(), 2);
    assert_eq!(retry[0].job.last_error.as_deref(), Some("boom"));
}

async fn a_dead_job_is_listed_redriven_with_its_schedule_restarted_and_discarded(o: Opened) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let ids = event_ids(2);
    let t0 = at("2026-01-02T03:00:00Z");
    o.store
        .queue_processing(vec![
            job(&acme, ids[0], 1, 0, t0),
            job(&acme, ids[1], 2, 0, t0),
        ])
        .await
        .unwrap();
    let claimed = o.store.claim_processing(10, t0, LEASE).await.unwrap();
    let finishes = claimed
        .iter()
        .map(|c| {
            finish(
                c,
                JobOutcome::Dead,
                vec![result("prc_b", ResultStatus::Failed, 1, t0)],
                t0,
            )
        })
        .collect();
    o.store
        .finish_processing_jobs(finishes, false)
        .await
        .unwrap();
    assert!(
        o.store
            .claim_processing(10, later(t0, 999), LEASE)
            .await
            .unwrap()
            .is_empty(),
        "dead jobs are not claimed"
    );

    let dead = o
        .store
        .dead_processing_jobs(&acme, &DeadJobFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].0.state, JobState::Dead);
    assert_eq!(dead[0].1[0].processor_id, "prc_b");
    let by_processor = DeadJobFilter {
        processor_id: Some("prc_b".into()),
        ..Default::default()
    };
    assert_eq!(
        o.store
            .dead_processing_jobs(&acme, &by_processor, 10, None)
            .await
            .unwrap()
            .len(),
        2
    );
    let other = DeadJobFilter {
        processor_id: Some("prc_zzz".into()),
        ..Default::default()
    };
    assert!(
        o.store
            .dead_processing_jobs(&acme, &other, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        o.store
            .dead_processing_jobs(&globex, &DeadJobFilter::default(), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let page = o
        .store
        .dead_processing_jobs(
            &acme,
            &DeadJobFilter::default(),
            10,
            Some(&dead[0].0.job_id),
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);

    // Redrive one by id (another tenant's redrive takes nothing), discard the other.
    let first = dead[0].0.job_id.clone();
    let t1 = later(t0, 100);
    assert_eq!(
        o.store
            .redrive_processing_jobs(
                &globex,
                Some(std::slice::from_ref(&first)),
                &Default::default(),
                t1
            )
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        o.store
            .redrive_processing_jobs(
                &acme,
                Some(std::slice::from_ref(&first)),
                &Default::default(),
                t1
            )
            .await
            .unwrap(),
        1
    );
    let back = o.store.claim_processing(10, t1, LEASE).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].job.attempts, 2, "attempt numbers go on");
    assert_eq!(back[0].job.attempt_base, 1, "the schedule starts over");
    assert!(
        !o.store.discard_processing_job(&acme, &first).await.unwrap(),
        "not dead now"
    );
    assert!(
        o.store
            .discard_processing_job(&acme, &dead[1].0.job_id)
            .await
            .unwrap()
    );
    assert!(
        o.store
            .dead_processing_jobs(&acme, &DeadJobFilter::default(), 10, None)
            .await
            .unwrap()
            .is_empty()
    );
}
