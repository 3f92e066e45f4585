"""CRM operations the pages and jobs call: contact imports from CSV."""
