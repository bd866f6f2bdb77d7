"""The database: every SQL statement Newsflow sends lives in this package."""
