"""Server-rendered console pages, one module per page. Every page is behind login; each view checks the
role its page and its actions need (console.permissions)."""
