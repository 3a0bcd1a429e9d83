// Full-width pages reached from the sidebar: preferences, admin, stats. Each loads its
// module on first visit, with the pages' stylesheet, so the first page load carries none
// of them.

let styles = null;

// pageStyles adds admin-pages.css once and settles when it has loaded (or failed: the page
// still works unstyled).
function pageStyles() {
  styles ??= new Promise((resolve) => {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = '/assets/admin-pages.css';
    link.addEventListener('load', resolve);
    link.addEventListener('error', resolve);
    document.head.append(link);
  });
  return styles;
}

const lazy = (title, load) => ({
  title,
  render(container, ctx, params) {
    let left = false;
    let cleanup = null;
    Promise.all([load(), pageStyles()]).then(([page]) => {
      if (!left) cleanup = page.render(container, ctx, params);
    }).catch((err) => {
      if (left) return;
      const p = document.createElement('p');
      p.className = 'page-missing';
      p.setAttribute('role', 'alert');
      p.textContent = `This page failed to load: ${err.message}`;
      container.append(p);
    });
    return () => {
      left = true;
      if (typeof cleanup === 'function') cleanup();
    };
  },
});

// pages maps a route name to {title, render(container, ctx, params) -> cleanup?}.
export const pages = {
  preferences: lazy('Preferences', () => import('./prefs.js').then((m) => m.prefsPage)),
  admin: lazy('Admin', () => import('./admin.js').then((m) => m.adminPage)),
  stats: lazy('Stats', () => import('./stats.js').then((m) => m.statsPage)),
};
