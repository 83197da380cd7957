//@ts-check
// Runs inside the search side panel webview. Every piece of repository text is set with textContent,
// so no snippet, path or query can inject markup or script.
(function () {
  // @ts-ignore acquireVsCodeApi is provided by the webview host
  const vscode = acquireVsCodeApi();

  /** @typedef {{ label: string; score: string; code: string }} ViewHit */
  /** @type {{ query: string; hits: ViewHit[] }} */
  const state = vscode.getState() || { query: '', hits: [] };

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
    results.replaceChildren();
    status.textContent = state.query ? hits.length + ' result' + (hits.length === 1 ? '' : 's') : '';
    hits.forEach((hit, index) => {
      const item = document.createElement('li');
      item.className = 'hit';
      item.tabIndex = 0;
      item.title = 'Open ' + hit.label;
      const header = document.createElement('div');
      header.className = 'hit-header';
      const label = document.createElement('span');
      label.className = 'hit-label';
      label.textContent = hit.label;
      const score = document.createElement('span');
      score.className = 'hit-score';
      score.textContent = hit.score;
      header.append(label, score);
      const code = document.createElement('pre');
      code.className = 'hit-code';
      code.textContent = hit.code;
      item.append(header, code);
      const open = () => vscode.postMessage({ type: 'open', index });
      item.addEventListener('click', open);
      item.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') open();
      });
      results.append(item);
    });
  }
})();
