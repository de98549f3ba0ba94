"""Views, one module per area: inbox (reviewers), policies (admins), metrics (managers),
status (operations). Each view checks its role with reviews.access."""
