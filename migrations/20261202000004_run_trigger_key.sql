-- What started a run (the svix-id of a Clerk delivery, an API event's key, a
-- transactional send's run), so the log of one delivery can be followed from the
-- webhook to the SMTP answer. Older runs have none.
alter table workflow_runs add column trigger_key text;
