// Full-width pages reached from the sidebar: preferences, admin, stats.
// Placeholder interface until those pages land (see frontend/README.md).

// pages maps a route name to {title, render(container, ctx, params) -> cleanup?}.
export const pages = {};
