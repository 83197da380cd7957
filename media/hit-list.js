//@ts-check
// Shared by the search and training webviews: draws ranked snippets. Every piece of repository text is set with
// textContent, so no snippet or path can inject markup or script.

/** @typedef {{ path: string; lines: string; score: string; code: string }} ViewHit */

/**
 * @param {HTMLElement} list
 * @param {ViewHit[]} hits
 * @param {(index: number) => void} open called on click or Enter
 */
function renderHitList(list, hits, open) {
  list.replaceChildren();
  hits.forEach((hit, index) => {
    const item = document.createElement('li');
    item.className = 'hit';
    item.tabIndex = 0;
    item.title = 'Open ' + hit.path + ':' + hit.lines;
    const header = document.createElement('div');
    header.className = 'hit-header';
    const label = document.createElement('span');
    label.className = 'hit-label';
    const path = document.createElement('span');
    path.className = 'hit-path';
    path.textContent = hit.path;
    const lines = document.createElement('span');
    lines.className = 'hit-lines';
    lines.textContent = ':' + hit.lines;
    label.append(path, lines);
    const score = document.createElement('span');
    score.className = 'hit-score';
    score.textContent = hit.score;
    header.append(label, score);
    const code = document.createElement('pre');
    code.className = 'hit-code';
    code.textContent = hit.code;
    item.append(header, code);
    item.addEventListener('click', () => open(index));
    item.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') open(index);
    });
    list.append(item);
  });
}
