-- Saved segments: a name and the filter as the client wrote it (checked when saved,
-- and again when used, against the properties and lists of that moment).
create table audience_segments (
    id         uuid        primary key,
    name       text        not null,
    filter     jsonb       not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
