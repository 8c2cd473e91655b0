// Renders the companion state (not running / not paired / ready) with the
// exact command that fixes it; used by the popup and the options page.

/**
 * @param {HTMLElement} container
 * @param {import('../background/handlers.js').CompanionStatus} status
 */
export function renderStatus(container, status) {
  const labels = { not_running: 'Companion not running', not_paired: 'Not paired', ready: 'Ready' };
  container.replaceChildren();
  container.dataset.state = status.state;
  const title = document.createElement('strong');
  title.className = 'state';
  title.textContent = labels[status.state];
  const message = document.createElement('div');
  message.className = 'message';
  message.textContent = status.message;
  container.append(title, message);
  if (status.fix) {
    const hint = document.createElement('div');
    hint.className = 'hint';
    hint.textContent = status.state === 'not_paired' ? 'In a terminal, run this, then enter the code:' : 'In a terminal, run:';
    const command = document.createElement('code');
    command.textContent = status.fix;
    container.append(hint, command);
  }
}
