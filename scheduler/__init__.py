"""APScheduler wiring: jobs take ids and call commerce services. Our tables are the truth."""
