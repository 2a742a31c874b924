import type { CampaignView } from '../../campaigns/campaignStore.js';

/**
 * A campaign object's settings as shown in reports (terminal header, HTML page): `[name, value]` pairs in the
 * document's order, bookkeeping fields left out, objects as compact JSON. The webhook's secret is never shown, only
 * that one is set.
 */
export function shownCampaignSettings(view: CampaignView): [string, string][] {
  const { id: _id, state: _state, status: _status, paused: _paused, created_at: _c, updated_at: _u, ramp_started_at: _r, ...settings } = view;
  return Object.entries(settings).flatMap(([name, value]): [string, string][] => {
    if (value === undefined) return [];
    if (name === 'webhook' && value && typeof value === 'object') {
      const { secret, ...rest } = value as { url: string; secret?: string };
      return [[name, JSON.stringify(secret === undefined ? rest : { ...rest, secret: '(set, not shown)' })]];
    }
    return [[name, typeof value === 'object' ? JSON.stringify(value) : String(value)]];
  });
}
