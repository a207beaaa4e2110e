"""Storage: settings, the database and its migrations, stored records and reports."""
