import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildCampaignReport, campaignCsv } from '../../src/results/campaignReport.js';
import { uniquePrefix } from '../helpers/testRedis.js';
import { body, call, problem, useApiFixture, type ApiFixture } from './apiFixture.js';

let api: ApiFixture;
useApiFixture(uniquePrefix('api-campaigns'), (f) => (api = f));

const newCampaign = () => `camp-${randomUUID().slice(0, 8)}`;

async function enqueue(campaign: string, numbers: string[], extra: Record<string, unknown> = {}): Promise<string[]> {
  const answer = await call(api.url, 'POST', `/v1/campaigns/${campaign}/calls`, { token: 'enqueue', body: { calls: numbers.map((n) => ({ phone_number: n, ...extra })) } });
  return (body(answer).results as { call_id: string }[]).map((r) => r.call_id);
}

describe('campaign controls', () => {
  it('pauses and resumes a campaign, saying whether anything changed', async () => {
    const campaign = newCampaign();
    await enqueue(campaign, ['+14155550800']);
    const pause = await call(api.url, 'POST', `/v1/campaigns/${campaign}/pause`, { token: 'admin' });
    expect(body(pause)).toEqual({ campaign_id: campaign, paused: true, changed: true });
    expect(await api.store.isPaused(campaign)).toBe(true);
    expect(body(await call(api.url, 'POST', `/v1/campaigns/${campaign}/pause`, { token: 'admin' })).changed).toBe(false);
    const resume = await call(api.url, 'POST', `/v1/campaigns/${campaign}/resume`, { token: 'admin' });
    expect(body(resume)).toEqual({ campaign_id: campaign, paused: false, changed: true, released: 0 });
    expect(await api.store.isPaused(campaign)).toBe(false);
  });

  it('releases at once on resume the calls the pause held back', async () => {
    const campaign = newCampaign();
    const [callId = ''] = await enqueue(campaign, ['+14155550801'], { at: new Date(Date.now() + 3_600_000).toISOString() });
    await call(api.url, 'POST', `/v1/campaigns/${campaign}/pause`, { token: 'admin' });
    // what a consumer does when it meets a paused campaign's call: the job waits, its id noted for the resume
    await api.store.holdForPause(campaign, callId);
    const resume = await call(api.url, 'POST', `/v1/campaigns/${campaign}/resume`, { token: 'admin' });
    expect(body(resume).released).toBe(1);
    expect(await (await api.queue.getJob(callId))?.isDelayed()).toBe(false);
  });

  it("cancels a campaign's calls that are not ringing and counts the ones in flight", async () => {
    const campaign = newCampaign();
    const ids = await enqueue(campaign, ['+14155550811', '+14155550812', '+14155550813']);
    const ringing = ids[2] ?? '';
    await api.store.beginAttempt({ callId: ringing, campaignId: campaign, phoneNumber: '+14155550813', metadata: {} }, 1, `room-${ringing}`, { dialSent: true });
    const answer = await call(api.url, 'POST', `/v1/campaigns/${campaign}/cancel`, { token: 'admin' });
    expect(body(answer)).toEqual({ campaign_id: campaign, canceled: 2, in_flight: 1, already_ended: 0 });
    expect(await api.store.get(campaign, ids[0] ?? '')).toMatchObject({ outcome: 'canceled' });
    expect(await api.store.get(campaign, ringing)).toMatchObject({ state: 'dialing' });
    expect(body(await call(api.url, 'POST', `/v1/campaigns/${campaign}/cancel`, { token: 'admin' }))).toMatchObject({ canceled: 0, already_ended: 2 });
  });

  it('answers 404 for a campaign that has no calls, naming the close ones (as the CLI refuses a typo)', async () => {
    const campaign = newCampaign();
    await enqueue(campaign, ['+14155550809']);
    problem(await call(api.url, 'POST', `/v1/campaigns/${newCampaign()}/cancel`, { token: 'admin' }), 404);
    const typo = problem(await call(api.url, 'POST', `/v1/campaigns/${campaign}x/pause`, { token: 'admin' }), 404);
    expect(typo.detail).toContain(`did you mean ${campaign}`);
    problem(await call(api.url, 'POST', `/v1/campaigns/${campaign}x/resume`, { token: 'admin' }), 404);
    expect(await api.store.isPaused(`${campaign}x`)).toBe(false);
  });

  it('takes no body on controls', async () => {
    const campaign = newCampaign();
    await enqueue(campaign, ['+14155550810']);
    problem(await call(api.url, 'POST', `/v1/campaigns/${campaign}/pause`, { token: 'admin', body: { reason: 'lunch' } }), 400);
  });
});

describe('GET /v1/campaigns/{id}/report', () => {
  it('reports totals, pending calls, the pause and every call as JSON', async () => {
    const campaign = newCampaign();
    const [a = '', b = '', c = ''] = await enqueue(campaign, ['+14155550821', '+14155550822', '+14155550823']);
    await api.store.applyTerminal({ callId: a, campaignId: campaign, outcome: 'answered', reportedBy: 'agent', endedAt: Date.now() });
    await api.store.applyTerminal({ callId: b, campaignId: campaign, outcome: 'busy', reportedBy: 'consumer', endedAt: Date.now(), sipStatusCode: 486, sipStatus: 'Busy Here' });
    await call(api.url, 'POST', `/v1/campaigns/${campaign}/pause`, { token: 'admin' });
    const answer = await call(api.url, 'GET', `/v1/campaigns/${campaign}/report`, { token: 'read' });
    expect(answer.status).toBe(200);
    const report = body(answer);
    expect(report).toMatchObject({ campaign_id: campaign, total: 3, pending: 1, paused: true, by_outcome: { answered: 1, busy: 1 } });
    expect(report.calls).toEqual([
      expect.objectContaining({ call_id: a, phone_number: '+14155550821', outcome: 'answered', state: 'terminal', attempts: 0, metadata: {} }),
      expect.objectContaining({ call_id: b, phone_number: '+14155550822', outcome: 'busy', sip_status_code: 486, sip_status: 'Busy Here' }),
      expect.objectContaining({ call_id: c, phone_number: '+14155550823', outcome: 'pending', state: 'queued' }),
    ]);
  });

  it('reports as the same JSON and CSV as `dialer report --json|--csv`, CSV by ?format=csv or Accept: text/csv', async () => {
    const campaign = newCampaign();
    const [a = ''] = await enqueue(campaign, ['+14155550831', '+14155550832'], { metadata: { first_name: 'Ada' } });
    await api.store.applyTerminal({
      callId: a,
      campaignId: campaign,
      outcome: 'answered',
      reportedBy: 'agent',
      endedAt: Date.now(),
      durationMs: 30_000,
      surveyAnswers: [{ question: 'How likely, 0-10?', answer: '9' }],
    });
    const byQuery = await call(api.url, 'GET', `/v1/campaigns/${campaign}/report?format=csv`, { token: 'read' });
    expect(byQuery.status).toBe(200);
    expect(byQuery.contentType).toBe('text/csv; charset=utf-8');
    // the CLI's own export, from the same records
    const report = await buildCampaignReport(api.store, campaign);
    expect(byQuery.text).toBe(campaignCsv(report));
    const [header, first, second] = byQuery.text.split('\r\n');
    expect(header).toMatch(/^call_id,campaign_id,phone_number,.*,first_name,"How likely, 0-10\?"$/);
    expect(first).toMatch(new RegExp(`^${a},${campaign},\\+14155550831,.*,answered,terminal,.*,Ada,9$`));
    expect(second).toMatch(/,pending,queued,/);
    const json = body(await call(api.url, 'GET', `/v1/campaigns/${campaign}/report`, { token: 'read' }));
    expect(json.calls).toHaveLength(report.calls.length);
    expect((json.calls as { call_id: string }[]).map((c) => c.call_id)).toEqual(report.calls.map((c) => c.callId));
    const byAccept = await call(api.url, 'GET', `/v1/campaigns/${campaign}/report`, { token: 'read', headers: { accept: 'text/csv' } });
    expect(byAccept.text).toBe(byQuery.text);
    const both = await call(api.url, 'GET', `/v1/campaigns/${campaign}/report`, { token: 'read', headers: { accept: 'application/json, text/csv' } });
    expect(both.contentType).toMatch(/^application\/json/);
  });

  it('answers 404 for a campaign without calls and 400 for an unknown format', async () => {
    problem(await call(api.url, 'GET', `/v1/campaigns/${newCampaign()}/report`, { token: 'read' }), 404);
    problem(await call(api.url, 'GET', `/v1/campaigns/x/report?format=xml`, { token: 'read' }), 400);
  });
});
