"""Where reviewers decide besides the inbox: Slack (slack.py), one-tap email links
(email_links.py) and Web Push to phones (push.py). Each builds its outbox messages here and
sends them through the one outbox (services/outbox.py); every decision it takes goes through
services/channel_decisions.py."""
