-- Every workflow definition a run started on, by the SHA-256 of its checked form, so
-- that a run keeps the steps it started with whatever the config file says later:
-- edits apply to new runs.
create table workflow_versions (
    id          text        primary key,
    workflow    text        not null,
    definition  jsonb       not null,
    created_at  timestamptz not null default now()
);

create index workflow_versions_workflow on workflow_versions (workflow, created_at);

-- Runs started before versions existed have none, and follow the file as before.
alter table workflow_runs add column version text references workflow_versions (id);

create index workflow_runs_version on workflow_runs (version) where state = 'active';
