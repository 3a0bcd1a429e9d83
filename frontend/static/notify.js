// Notifications: the bell, its panel, pop-ups, browser notifications and sounds.
// Placeholder interface until the notifications UI lands (see frontend/README.md).

// mountNotifications(ctx, bellSlot, toasts) draws the bell into bellSlot and pop-ups into
// toasts; it returns a function that tears everything down.
export function mountNotifications(ctx, bellSlot, toasts) {
  void ctx; void bellSlot; void toasts;
  return () => {};
}
