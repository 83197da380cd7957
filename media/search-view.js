//@ts-check
// Runs inside the search side panel webview. Every piece of repository text is set with textContent,
// so no snippet, path or query can inject markup or script.
(function () {
  // @ts-ignore acquireVsCodeApi is provided by the webview host
  const vscode = acquireVsCodeApi();

  /** @typedef {{ path: string; lines: string; score: string; code: string }} ViewHit */
  /** @type {{ query: string; hits: ViewHit[] }} */
  const state = vscode.getState() || { query: '', hits: [] };
  // State saved by an older version draws rows differently: start empty rather than draw it wrong.
  if (!state.hits.every((/** @type {ViewHit} */ hit) => typeof hit.path === 'string')) state.hits = [];

  const form = /** @type {HTMLFormElement} */ (document.getElementById('search-form'));
  const input = /** @type {HTMLInputElement} */ (document.getElementById('query'));
  const status = /** @type {HTMLElement} */ (document.getElementById('status'));
  const results = /** @type {HTMLOListElement} */ (document.getElementById('results'));
  const atCursor = /** @type {HTMLButtonElement} */ (document.getElementById('at-cursor'));

  input.value = state.query;
  render(state.hits);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = input.value.trim();
    if (query) vscode.postMessage({ type: 'search', query });
  });
  atCursor.addEventListener('click', () => vscode.postMessage({ type: 'retrieveAtCursor' }));

  window.addEventListener('message', (event) => {
    const message = event.data;
    switch (message.type) {
      case 'busy':
        status.textContent = 'Searching…';
        break;
      case 'results':
        state.query = message.query;
        state.hits = message.hits;
        vscode.setState(state);
        render(message.hits);
        break;
      case 'error':
        status.textContent = 'Search failed: ' + message.message;
        break;
    }
  });

  /** @param {ViewHit[]} hits */
  function render(hits) {
    status.textContent = state.query ? hits.length + ' result' + (hits.length === 1 ? '' : 's') : '';
    // @ts-ignore renderHitList comes from hit-list.js, loaded first
    renderHitList(results, hits, (index) => vscode.postMessage({ type: 'open', index }));
  }
})();
