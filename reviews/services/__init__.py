"""The services: the only code that changes a review request's state, one module per stage of
its life.

Views, the API, Celery tasks and the admin call these functions. Each runs in one transaction,
writes an AuditEvent, and queues what others must hear (the agent's webhook, a reviewer's
email) in the outbox, sent after commit. Exactly-once comes from claiming the row with a
conditional UPDATE on its current state and checking the row count: of racing callers, one
matches the row and the others match none.

    submission        an agent's request arrives: rules, assignee, deadline (submit_request)
    decisions         a person or the deadline decides it; undo; the agent cancels it
    bulk              a reviewer's batch of decisions, and its undo as one
    assignment        who has it: reassign, escalate, away hand-over
    deadlines         the timeout sweep and reminders
    deadline_plan     what the deadline will do, in steps (read by the sweep, pages, reminders)
    sightings         when a reviewer first saw or opened a request (review time)
    conversation      messages on a request and the agent's revised proposals
    notify            emails and chat messages to reviewers
    slack_links       which reviewer a Slack member is
    outbox            webhooks, emails and chat messages: recorded, handed to Celery, sent, retried
    autonomy          a category runs without a human, and the gate comes back
    periodic_reviews  verdicts on sampled human-free decisions
    agreement         blind second reviews of human decisions
    guidelines        guidance written from a decision
    policies          an admin's policy saves and restores, and the versions they leave
    setup             an admin's queues, agents and API tokens
    audit             the audit trail every write leaves; its verbs are listed there
    errors            why a transition was refused
    retries           a deadlock's victim runs its transaction again

No module here imports reviews.tasks (which builds on them: the outbox names its tasks), and
their imports form no cycle; tests/test_architecture.py keeps both true.
"""
