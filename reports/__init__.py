"""Reports: results trees into pandas tables, figures and HTML/Markdown reports."""
