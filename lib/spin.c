// SPDX-License-Identifier: MIT
/*
 * The adaptive polling policy of spin.h: a mean of the gaps between
 * completion batches, a window derived from it, and a back-off counted in
 * polls that found nothing.  Integer arithmetic only; a few instructions
 * per loop pass.  Called from the loop's own thread.
 */
#include "spin.h"

void aiol_spin_init(struct aiol_spin *s, unsigned int cap_us, bool batch)
{
	*s = (struct aiol_spin){
	    .cap_ns = (uint64_t)cap_us * 1000u,
	    .gap_ns = (uint64_t)cap_us * 1000u / SPIN_K,
	    .backoff = SPIN_BACKOFF_MIN,
	    .batch = batch && cap_us,
	};
}

void aiol_spin_seen(struct aiol_spin *s, uint64_t now_ns)
{
	uint64_t gap;

	if (s->last_ns && now_ns > s->last_ns) {
		gap = now_ns - s->last_ns;
		if (gap > 2 * s->cap_ns)
			gap = 2 * s->cap_ns;
		/* gap_ns += (gap - gap_ns) / 8, without going negative */
		s->gap_ns = s->gap_ns - (s->gap_ns >> SPIN_EWMA_SHIFT) + (gap >> SPIN_EWMA_SHIFT);
	}
	s->last_ns = now_ns;
}

uint64_t aiol_spin_window(const struct aiol_spin *s)
{
	uint64_t w;

	if (!s->cap_ns || s->gap_ns > s->cap_ns)
		return 0;
	w = SPIN_K * s->gap_ns;
	return w < s->cap_ns ? w : s->cap_ns;
}

uint64_t aiol_spin_decide(struct aiol_spin *s, unsigned int inflight, uint64_t now_ns)
{
	uint64_t w = aiol_spin_window(s), end;

	if (!inflight || !w || aiol_spin_batch(s, inflight) > 1)
		goto sleep;
	if (s->skip) {
		s->skip--;
		goto sleep;
	}
	/* From the last completion: a loop that has not seen one within the
	 * window sleeps.  No completion yet: a full window from now. */
	end = s->last_ns ? s->last_ns + w : now_ns + w;
	if (end <= now_ns)
		goto sleep;
	s->polls++;
	return end - now_ns;
sleep:
	s->sleeps++;
	return 0;
}

unsigned int aiol_spin_batch(const struct aiol_spin *s, unsigned int inflight)
{
	if (!s->batch || inflight < SPIN_BATCH_MIN)
		return 1;
	return inflight / 4 < SPIN_BATCH_MAX ? inflight / 4 : SPIN_BATCH_MAX;
}

void aiol_spin_outcome(struct aiol_spin *s, bool hit)
{
	if (hit) {
		s->hits++;
		s->misses = 0;
		s->backoff = SPIN_BACKOFF_MIN;
		return;
	}
	if (++s->misses < SPIN_MISS_LIMIT)
		return;
	s->misses = 0;
	s->skip = s->backoff;
	if (s->backoff < SPIN_BACKOFF_MAX)
		s->backoff *= 2;
}
