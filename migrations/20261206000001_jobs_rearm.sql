-- A keyed job asked for again while it runs (`queue::rearm_job`) runs once more when it
-- finishes, rather than ending done: a run that began before the caller's commit never
-- stands in for one after it.
alter table jobs add column rearmed boolean not null default false;

-- Forwarding keeps one job per destination now, re-armed; the finished ones it added
-- per second before are history.
delete from jobs where kind = 'forward.events' and state = 'done';
