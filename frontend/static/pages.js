// Full-width pages reached from the sidebar: preferences, admin, stats.

import { prefsPage } from './prefs.js';
import { adminPage } from './admin.js';
import { statsPage } from './stats.js';

// pages maps a route name to {title, render(container, ctx, params) -> cleanup?}.
export const pages = {
  preferences: prefsPage,
  admin: adminPage,
  stats: statsPage,
};
