-- The durable job queue: work that must happen later or outside a request (workflow
-- steps, email sends). Claimed with FOR UPDATE SKIP LOCKED under a lease, so no
-- transaction or lock is held while a job runs; a worker that dies leaves a lease that
-- expires and another worker takes the job again.
create table jobs (
    id           bigint generated always as identity primary key,
    kind         text        not null,
    -- Optional idempotency key: enqueueing the same (kind, key) twice adds one job.
    key          text,
    payload      jsonb       not null default '{}',
    state        text        not null default 'scheduled'
                 check (state in ('scheduled', 'running', 'done', 'dead')),
    run_at       timestamptz not null default now(),
    attempts     integer     not null default 0,
    max_attempts integer     not null default 8 check (max_attempts > 0),
    locked_by    uuid,
    locked_until timestamptz,
    last_error   text,
    created_at   timestamptz not null default now(),
    finished_at  timestamptz,
    unique (kind, key)
);

-- The worker reads only due work: these stay small however many timers wait.
create index jobs_scheduled_run_at on jobs (run_at) where state = 'scheduled';
create index jobs_running_locked_until on jobs (locked_until) where state = 'running';
