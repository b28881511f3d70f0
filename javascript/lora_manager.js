// LoRA Manager: browser glue for the Library tab.
// SDNext loads this file as a deferred page script; the standalone app runs it once on load.
// Everything is event delegation on `document`, so it works before Gradio has rendered and
// survives every re-render of the result cards. The server renders all markup (escaped).
(function loraManagerInit() {
  'use strict';

  if (window.loraManager && window.loraManager.initialised) return;

  const OPEN_ID = 'lora_manager_open_id';
  const OPEN_BUTTON = 'lora_manager_open_btn';
  const SELECTED = 'lora_manager_selected';
  const REFRESH_BUTTON = 'lora_manager_refresh_btn';
  const RESULTS = 'lora_manager_results';
  const DETAIL = 'lora_manager_detail';
  const BULK_BAR = 'lora_manager_bulkbar';
  const HISTORY_RESULTS = 'lora_manager_history_results';
  // each result list sends a clicked card's id to its own hidden textbox and button
  const OPENERS = [[RESULTS, OPEN_ID, OPEN_BUTTON],
    [HISTORY_RESULTS, 'lora_manager_history_open_id', 'lora_manager_history_open_btn']];
  // result list -> hidden refresh button, clicked the first time the list becomes visible
  const FIRST_VIEW = [[RESULTS, REFRESH_BUTTON], [HISTORY_RESULTS, 'lora_manager_history_refresh_btn'],
    ['lora_manager_analytics_results', 'lora_manager_analytics_first_view']];
  // an analytics figure's tab -> [tab label, search textbox, search button, result list] of the tab it opens
  const LINK_TARGETS = {
    library: ['Library', 'lora_manager_search', 'lora_manager_search_btn', RESULTS],
    history: ['History', 'lora_manager_history_search', 'lora_manager_history_search_btn', HISTORY_RESULTS],
  };
  // result lists already filled by a search: their first-view refresh would overwrite it
  const filled = new Set();
  const SIDEBAR_BUTTON = '#other_extensions > button.xtabs-tab[tabitemid*="#tab_lora_manager_tabitem"]';

  // SDNext defines gradioApp(); standalone Gradio does not.
  function root() {
    if (typeof window.gradioApp === 'function') {
      const app = window.gradioApp();
      if (app) return app;
    }
    return document;
  }

  function byId(id) {
    return root().querySelector(`#${id}`) || document.getElementById(id);
  }

  // The input element of a Gradio textbox (its elem_id sits on a wrapper).
  function field(id) {
    const box = byId(id);
    return box && (box.matches('textarea, input') ? box : box.querySelector('textarea, input'));
  }

  // Write a value into a Gradio textbox so that Gradio sees it (it listens to `input`).
  function setTextbox(id, value) {
    const input = field(id);
    if (!input) return false;
    input.value = value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
    return true;
  }

  function readTextbox(id) {
    const input = field(id);
    return input ? input.value : '';
  }

  function clickButton(id) {
    const button = byId(id);
    if (button) button.click();
    return Boolean(button);
  }

  function eventTarget(event) {
    const path = typeof event.composedPath === 'function' ? event.composedPath() : [];
    const first = path.length ? path[0] : event.target;
    return first instanceof Element ? first : event.target;
  }

  // --- opening a card --------------------------------------------------------------------

  function openCard(card) {
    const id = card.getAttribute('data-id');
    if (!id) return;
    const [results, textbox, button] = OPENERS.find(([list]) => card.closest(`#${list}`)) || OPENERS[0];
    root().querySelectorAll(`#${results} .lm-card.lm-active, #${results} .lm-row.lm-active`).forEach((el) => el.classList.remove('lm-active'));
    card.classList.add('lm-active');
    if (setTextbox(textbox, id)) clickButton(button);
  }

  function showTab(label) {
    const tabButton = Array.from(root().querySelectorAll('#lora_manager_tabs .tab-nav button'))
      .find((b) => b.textContent.trim() === label);
    if (tabButton) tabButton.click();
  }

  // A LoRA named in a History detail: show it in the Library tab's detail panel.
  function openLora(loraId) {
    showTab('Library');
    setTimeout(() => { if (setTextbox(OPEN_ID, loraId)) clickButton(OPEN_BUTTON); }, 50);
  }

  // An analytics figure or row: its query runs in the Library or History tab, which shows.
  function followLink(holder) {
    const target = LINK_TARGETS[holder.getAttribute('data-lm-link-tab')];
    if (!target) return;
    const [label, textbox, button, results] = target;
    filled.add(results);
    showTab(label);
    if (setTextbox(textbox, holder.getAttribute('data-lm-link-query') || '')) clickButton(button);
  }

  // An error's example record: the History tab shows it in its detail panel.
  function openGeneration(generationId) {
    if (!/^\d+$/.test(generationId || '')) return;
    showTab('History');
    setTimeout(() => {
      if (setTextbox('lora_manager_history_open_id', generationId)) clickButton('lora_manager_history_open_btn');
    }, 50);
  }

  // An insight's "Make W its default": the Analytics tab applies it and reads its figures again.
  function applyInsight(button) {
    const id = button.getAttribute('data-lora-id');
    const weight = button.getAttribute('data-weight');
    if (setTextbox('lora_manager_analytics_action', `${id}:${weight}`)) clickButton('lora_manager_analytics_action_btn');
  }

  // A card's "+": the LoRA joins the composition (the Compose tab reads "id nonce", so adding
  // the same LoRA twice in a row is still a change) and the Compose tab shows.
  function addToComposition(loraId) {
    if (!setTextbox('lora_manager_compose_add_box', `${loraId} ${Date.now()}`)) return;
    const tabButton = Array.from(root().querySelectorAll('#lora_manager_tabs .tab-nav button'))
      .find((b) => b.textContent.trim() === 'Compose');
    if (tabButton) tabButton.click();
  }

  // Thumbs up / down / hide on a recommendation, or "added" from its "+": stored by the
  // Recommendations tab, which shows its answers again (a hidden one is gone).
  function recommendationFeedback(button, kind) {
    const value = `${button.getAttribute('data-context')}|${button.getAttribute('data-id')}|${kind}`;
    if (setTextbox('lora_manager_recommend_action', value)) clickButton('lora_manager_recommend_action_btn');
  }

  // Compose's suggestion strip follows the prompt: asked once typing pauses, in the
  // background (the textbox never waits for it).
  const SUGGEST_DELAY_MS = 600;
  let suggestTimer = null;
  function suggestSoon() {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(() => clickButton('lora_manager_compose_suggest_btn'), SUGGEST_DELAY_MS);
  }

  function showDetail(detailId) {
    const detail = byId(detailId || DETAIL);
    if (!detail) return;
    detail.scrollTop = 0; // a newly opened LoRA starts at its name, not where the last one was left
    const rect = detail.getBoundingClientRect();
    if (rect.top < 0 || rect.top > window.innerHeight - 80) detail.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  // --- selection (hidden textbox "3,17,42" is the single source of truth) -----------------

  function selectedIds() {
    return readTextbox(SELECTED).split(',').map((s) => s.trim()).filter((s) => /^\d+$/.test(s));
  }

  // The count, the boxes and the bulk bar follow the hidden textbox; the bar sticks above the
  // cards while anything is selected (style.css, .lm-has-selection).
  function writeSelection(ids) {
    const unique = Array.from(new Set(ids));
    setTextbox(SELECTED, unique.join(','));
    const count = root().querySelector('#lora_manager_selection .lm-sel-count');
    if (count) count.textContent = unique.length ? `${unique.length.toLocaleString()} selected` : 'No cards selected';
    const bar = byId(BULK_BAR);
    if (bar) bar.classList.toggle('lm-has-selection', unique.length > 0);
    placeBulkBar();
    const wanted = new Set(unique);
    root().querySelectorAll(`#${RESULTS} .lm-select-box`).forEach((box) => {
      const on = wanted.has(box.getAttribute('data-id'));
      box.checked = on;
      const holder = box.closest('.lm-card, .lm-row');
      if (holder) holder.classList.toggle('lm-selected', on);
    });
  }

  function toggleSelection(id, on) {
    const ids = selectedIds().filter((x) => x !== id);
    if (on) ids.push(id);
    writeSelection(ids);
  }

  // While a card is selected and the place of the bulk bar has scrolled away, the bar is pinned
  // to the top of the screen over the results' column (position: fixed, from the measured column:
  // sticky would be defeated by the overflow of Gradio's container). The results keep the bar's
  // room, so nothing jumps.
  let placing = false;
  function placeBulkBar() {
    const bar = byId(BULK_BAR);
    if (!bar || !bar.parentElement) return;
    const column = bar.parentElement.getBoundingClientRect();
    const before = bar.previousElementSibling;
    const natural = before ? before.getBoundingClientRect().bottom : column.top;
    const height = bar.offsetHeight;
    const pin = bar.classList.contains('lm-has-selection') && natural < 0 && column.bottom > height + 60 && column.width > 0;
    if (pin) {
      bar.style.setProperty('--lm-pin-left', `${column.left}px`);
      bar.style.setProperty('--lm-pin-width', `${column.width}px`);
      if (!bar.classList.contains('lm-pinned')) bar.style.setProperty('--lm-pin-space', `${height}px`);
    }
    bar.classList.toggle('lm-pinned', pin);
  }

  function placeSoon() {
    if (placing) return;
    placing = true;
    requestAnimationFrame(() => { placing = false; placeBulkBar(); });
  }

  // After an action the server changed the selection (trashed LoRAs leave it): show its value.
  function syncSelection(text) {
    writeSelection(String(text || '').split(',').map((s) => s.trim()).filter((s) => /^\d+$/.test(s)));
  }

  function selectPage() {
    const ids = selectedIds();
    root().querySelectorAll(`#${RESULTS} .lm-select-box`).forEach((box) => ids.push(box.getAttribute('data-id')));
    writeSelection(ids);
  }

  // --- rating from a card: one click on a star (star N rates N; the current rating's star clears it)

  function drawStars(holder, rating) {
    holder.setAttribute('data-rating', String(rating));
    holder.classList.toggle('lm-unrated', rating === 0);
    const title = rating ? `rated ${rating} of 5` : 'not rated';
    holder.title = title;
    holder.setAttribute('aria-label', title);
    holder.querySelectorAll('.lm-star').forEach((star) => {
      const n = Number(star.getAttribute('data-star'));
      star.classList.toggle('lm-on', n <= rating);
      star.textContent = n <= rating ? '\u2605' : '\u2606';
      star.title = n === rating ? 'Clear the rating' : `Rate ${n} of 5`;
    });
  }

  // Every place the Library shows this LoRA's stars: its card or row, and the open detail.
  function showRating(text) {
    const match = /^(\d+):(\d)$/.exec(String(text || '').trim());
    if (!match) return;
    const [, id, rating] = match;
    root().querySelectorAll(`#${RESULTS} .lm-rate[data-id="${id}"]`).forEach((holder) => drawStars(holder, Number(rating)));
    const detailStars = root().querySelector(`#${DETAIL} .lm-detail-view[data-id="${id}"] .lm-stars`);
    if (detailStars) {
      const n = Number(rating);
      detailStars.textContent = '\u2605'.repeat(n) + '\u2606'.repeat(5 - n);
      detailStars.classList.toggle('lm-unrated', n === 0);
      detailStars.title = n ? `rated ${n} of 5` : 'not rated';
    }
  }

  function rate(star) {
    const holder = star.closest('.lm-rate');
    const id = holder && holder.getAttribute('data-id');
    if (!id) return;
    const chosen = Number(star.getAttribute('data-star'));
    const rating = chosen === Number(holder.getAttribute('data-rating')) ? 0 : chosen;
    showRating(`${id}:${rating}`); // at once; the stored value follows from the server
    if (setTextbox('lora_manager_rate', `${id}:${rating}`)) clickButton('lora_manager_rate_btn');
  }

  // A card's "N copies": the search shows every file with the same content.
  function showCopies(sha) {
    if (!/^[0-9a-f]{4,64}$/.test(sha || '')) return;
    if (setTextbox('lora_manager_search', `hash:${sha}`)) clickButton('lora_manager_search_btn');
  }

  // --- copy --------------------------------------------------------------------------------

  function flash(buttonId, text) {
    const button = byId(buttonId);
    if (!button) return;
    const original = button.dataset.lmLabel || button.textContent;
    button.dataset.lmLabel = original;
    button.textContent = text;
    setTimeout(() => { button.textContent = original; }, 1200);
  }

  function copyFallback(text) {
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }

  function copy(text, buttonId) {
    const value = String(text || '');
    if (!value) return;
    const done = (ok) => { if (buttonId) flash(buttonId, ok ? 'Copied' : 'Copy failed'); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(() => done(true), () => done(copyFallback(value)));
    } else {
      done(copyFallback(value));
    }
  }

  // --- delegated listeners ---------------------------------------------------------------------

  document.addEventListener('click', (event) => {
    const target = eventTarget(event);
    if (!target || !target.closest) return;
    if (target.closest('.lm-select-page')) { selectPage(); return; }
    if (target.closest('.lm-clear-selection')) { writeSelection([]); return; }
    // the Library detail's usage: a picture opens its generation, a figure its History query
    const usagePicture = target.closest('#lora_manager_detail [data-lm-open-generation]');
    if (usagePicture) { event.preventDefault(); openGeneration(usagePicture.getAttribute('data-lm-open-generation')); return; }
    const usageLink = target.closest('#lora_manager_detail [data-lm-link-tab]');
    if (usageLink) { event.preventDefault(); followLink(usageLink); return; }
    const loraLink = target.closest('.lm-lora-link');
    if (loraLink) { event.preventDefault(); openLora(loraLink.getAttribute('data-lora-id')); return; }
    const insightAction = target.closest('#lora_manager_analytics .lm-an-action');
    if (insightAction) { applyInsight(insightAction); return; }
    const example = target.closest('#lora_manager_analytics [data-lm-open-generation]');
    if (example) { event.preventDefault(); openGeneration(example.getAttribute('data-lm-open-generation')); return; }
    const figure = target.closest('#lora_manager_analytics [data-lm-link-tab]');
    if (figure && !target.closest('.lm-an-csv')) { event.preventDefault(); followLink(figure); return; }
    const recoFeedback = target.closest('#lora_manager_recommend .lm-reco-fb');
    if (recoFeedback) { recommendationFeedback(recoFeedback, recoFeedback.getAttribute('data-kind')); return; }
    const composeAdd = target.closest('.lm-compose-add');
    if (composeAdd) {
      addToComposition(composeAdd.getAttribute('data-id'));
      if (composeAdd.hasAttribute('data-context')) recommendationFeedback(composeAdd, 'added');
      if (composeAdd.closest('#lora_manager_compose_suggest')) suggestSoon(); // the added one leaves the strip
      return;
    }
    const star = target.closest(`#${RESULTS} .lm-rate .lm-star`);
    if (star) { rate(star); return; }
    const copies = target.closest(`#${RESULTS} .lm-dupe-badge`);
    if (copies) { showCopies(copies.getAttribute('data-sha')); return; }
    if (target.closest('.lm-check, .lm-select-box, a')) return; // checkbox and links keep their own behaviour
    const card = target.closest('.lm-card, .lm-row');
    if (card && card.closest(`#${RESULTS}, #${HISTORY_RESULTS}`)) openCard(card);
  });

  document.addEventListener('input', (event) => {
    const target = eventTarget(event);
    if (target && target.closest && target.closest('#lora_manager_compose_base')) suggestSoon();
  });

  document.addEventListener('change', (event) => {
    const target = eventTarget(event);
    if (target && target.classList && target.classList.contains('lm-select-box')) {
      toggleSelection(target.getAttribute('data-id'), target.checked);
    }
  });

  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const target = eventTarget(event);
    if (target && target.matches && target.matches('#lora_manager_analytics tr[data-lm-link-tab]')) {
      event.preventDefault();
      followLink(target);
      return;
    }
    if (!target || !target.matches || !target.matches('.lm-card, .lm-row')) return;
    event.preventDefault();
    openCard(target);
  });

  // any scroller (the page, or a host's scrolling panel) moves the bar's place
  document.addEventListener('scroll', placeSoon, { capture: true, passive: true });
  window.addEventListener('resize', placeSoon, { passive: true });

  // Images do not bubble `error`; capture it to fall back to the placeholder under the image.
  document.addEventListener('error', (event) => {
    const target = event.target;
    if (target && target.classList && target.classList.contains('lm-thumb-img')) target.classList.add('lm-broken');
  }, true);

  // --- once the page is there --------------------------------------------------------------------

  let titled = false;

  // A tab's first page is rendered when the UI is built; refresh it the first time its
  // results become visible (SDNext/ModernUI fire no tab events we could use).
  function watchResults(resultsId, refreshId) {
    const results = byId(resultsId);
    if (!results) return false;
    if (!('IntersectionObserver' in window)) { if (!filled.has(resultsId)) clickButton(refreshId); return true; }
    let refreshed = false;
    const observer = new IntersectionObserver((entries) => {
      if (!refreshed && entries.some((e) => e.isIntersecting)) {
        refreshed = filled.has(resultsId) || clickButton(refreshId);
        if (refreshed) observer.disconnect();
      }
    });
    observer.observe(results);
    return true;
  }

  // ModernUI shows extension tabs as sidebar icons without a tooltip: give ours a name.
  function titleSidebarButton() {
    const button = document.querySelector(SIDEBAR_BUTTON) || root().querySelector(SIDEBAR_BUTTON);
    if (!button) return false;
    button.title = 'LoRA Manager';
    button.setAttribute('aria-label', 'LoRA Manager');
    return true;
  }

  let tries = 0;
  const watching = new Set();
  const timer = setInterval(() => {
    tries += 1;
    FIRST_VIEW.forEach(([results, refresh]) => {
      if (!watching.has(results) && watchResults(results, refresh)) watching.add(results);
    });
    if (!titled) titled = titleSidebarButton();
    if ((watching.size === FIRST_VIEW.length && titled) || tries > 180) clearInterval(timer);
  }, 1000);

  window.loraManager = {
    initialised: true, root, byId, field, copy, openCard, showDetail, selectedIds, writeSelection, syncSelection, showRating,
  };
}());
