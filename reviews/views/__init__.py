"""Views, one module per screen area: the reviewers' inbox, batch, second_reviews,
periodic_reviews, away and guidelines; the admins' policies; the managers' metrics and audit;
home; the operators' status. Each view checks its role and the object with reviews.access."""
