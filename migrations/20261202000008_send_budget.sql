-- Throttled sending. Bulk jobs (a campaign's sends) are claimed only after every due
-- job that is not bulk, and only as the send budget allows; the index serves each kind's
-- due scan on its own, however many timers wait.
alter table jobs add column bulk boolean not null default false;
drop index jobs_scheduled_run_at;
create index jobs_scheduled_run_at on jobs (bulk, run_at) where state = 'scheduled';

-- The send budget shared by every replica (`[sending] rate`): one row, the earliest
-- time the next email may go. Each send takes the slot at or after it and moves it one
-- interval on, so sends are spaced evenly at the rate, whichever process sends them.
create table send_budget (
    only_row  boolean     primary key default true check (only_row),
    next_slot timestamptz not null default '-infinity'
);
insert into send_budget default values;
