//@ts-check
// Runs inside the training side panel webview. Every piece of repository text is set with textContent, so no
// snippet, path or query can inject markup or script. The chart is uPlot (dist/webview/uPlot.iife.min.js).
(function () {
  // @ts-ignore acquireVsCodeApi is provided by the webview host
  const vscode = acquireVsCodeApi();
  /** @type {any} */
  // @ts-ignore uPlot is the global of the bundled IIFE build
  const UPlot = window.uPlot;

  /** @typedef {{ step: number; loss: number; entropyRetriever: number; entropyTeacher: number }} Point */
  /** @typedef {{ path: string; lines: string; score: string; code: string }} ViewHit */

  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const chartBox = $('chart');
  const css = getComputedStyle(document.body);
  const color = (/** @type {string} */ name, /** @type {string} */ fallback) => css.getPropertyValue(name).trim() || fallback;
  /** @type {any} */
  let chart;

  function makeChart() {
    const axis = { stroke: color('--vscode-foreground', '#ccc'), grid: { stroke: color('--vscode-panel-border', '#444'), width: 1 } };
    chart = new UPlot(
      {
        width: Math.max(160, chartBox.clientWidth),
        height: 180,
        scales: { x: { time: false } },
        axes: [{ ...axis, label: 'step' }, { ...axis, label: 'nats' }],
        series: [
          { label: 'step' },
          { label: 'KL(Q‖P_R)', stroke: color('--vscode-charts-blue', '#3794ff'), width: 2 },
          { label: 'H(P_R)', stroke: color('--vscode-charts-orange', '#d18616'), dash: [4, 4] },
          { label: 'H(Q)', stroke: color('--vscode-charts-green', '#89d185'), dash: [4, 4] },
        ],
      },
      [[], [], [], []],
      chartBox,
    );
    new ResizeObserver(() => chart.setSize({ width: Math.max(160, chartBox.clientWidth), height: 180 })).observe(chartBox);
  }

  /** @param {Point[]} history */
  function plot(history) {
    chart.setData([
      history.map((p) => p.step),
      history.map((p) => p.loss),
      history.map((p) => p.entropyRetriever),
      history.map((p) => p.entropyTeacher),
    ]);
  }

  /** @param {number | undefined} seconds */
  function eta(seconds) {
    if (seconds === undefined || !isFinite(seconds)) return '';
    if (seconds < 90) return 'ETA ' + Math.round(seconds) + ' s';
    if (seconds < 5400) return 'ETA ' + Math.round(seconds / 60) + ' min';
    return 'ETA ' + (seconds / 3600).toFixed(1) + ' h';
  }

  /** @param {any} status @param {Point[]} history */
  function showTraining(status, history) {
    const active = status.state === 'running' || status.state === 'starting';
    const names = { idle: 'No training run yet', starting: 'Starting', running: 'Training', done: 'Trained', cancelled: 'Stopped', failed: 'Failed' };
    $('state').textContent = (/** @type {any} */ (names))[status.state] + (status.runId ? ' · ' + status.runId : '');
    $('cancel').hidden = !active;
    $('train').hidden = active;
    $('step').textContent = status.steps ? 'step ' + status.step + '/' + status.steps : '';
    $('loss').textContent = status.loss === undefined ? '' : 'loss ' + status.loss.toFixed(4);
    $('eta').textContent = active ? eta(status.etaSeconds) : '';
    $('message').textContent = status.message || '';
    plot(history);
  }

  /** Restricted Mode: the Train button is disabled and says why (training calls the language model). @param {boolean} trusted */
  function showTrust(trusted) {
    const train = /** @type {HTMLButtonElement} */ ($('train'));
    train.disabled = !trusted;
    train.title = trusted ? 'Train the retriever with the LM (LSR)' : 'Unavailable in Restricted Mode: training calls a language model. Trust the workspace to train.';
  }

  /** @param {HTMLElement} list @param {ViewHit[]} hits @param {'base' | 'tuned'} side */
  function renderHits(list, hits, side) {
    // @ts-ignore renderHitList comes from hit-list.js, loaded first
    renderHitList(list, hits, (index) => vscode.postMessage({ type: 'open', side, index }));
  }

  makeChart();
  $('train').addEventListener('click', () => vscode.postMessage({ type: 'train' }));
  $('cancel').addEventListener('click', () => vscode.postMessage({ type: 'cancel' }));
  $('compare-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const query = /** @type {HTMLInputElement} */ ($('compare-query')).value.trim();
    if (query) {
      $('compare-status').textContent = 'Comparing…';
      vscode.postMessage({ type: 'compare', query });
    }
  });
  window.addEventListener('message', (event) => {
    const message = event.data;
    if (message.type === 'training') {
      showTraining(message.status, message.history);
      showTrust(message.trusted);
    }
    if (message.type === 'comparison') {
      /** @type {HTMLInputElement} */ ($('compare-query')).value = message.query;
      $('compare-status').textContent = 'Top ' + message.base.length + ' for the query, base encoder vs ' + message.tunedName;
      $('tuned-title').textContent = 'Tuned · ' + message.tunedName;
      renderHits($('base'), message.base, 'base');
      renderHits($('tuned'), message.tuned, 'tuned');
    }
  });
  vscode.postMessage({ type: 'ready' });
})();
