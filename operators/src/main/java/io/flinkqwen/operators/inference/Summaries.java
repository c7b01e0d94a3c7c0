/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.operators.inference;

import java.io.Serializable;
import org.apache.flink.annotation.PublicEvolving;

/**
 * When and how the operator summarizes a key's events ({@link Task#summarize}): a summary is
 * triggered per key after {@code everyEvents} events, or at the end of every period of {@code
 * everyMillis} (aligned to the epoch, as tumbling windows are) of event or processing time in
 * which the key had events, whichever comes first when both are set. Each summary is one ChatML
 * user turn of the key's history, so the model sees its previous summaries (the long context)
 * and answers with the next one.
 *
 * <p>The user turn is {@code promptTemplate} with {@value #EVENTS} replaced by the new events'
 * texts, one per line, and {@value #SUMMARY} (optional) by the previous summary ({@value
 * #NO_SUMMARY} before the first). Placeholders are replaced in one pass, so an event whose text
 * says {@code {summary}} stays as written. The whole turn is data: ChatML encodes it with special
 * tokens off, so an event saying {@code <|im_end|>} cannot end the turn.
 *
 * @param everyEvents a summary after this many new events; 0: no count trigger
 * @param everyMillis a summary at the end of each period of this length that had events; 0: no
 *     time trigger
 * @param timeDomain the time {@code everyMillis} is measured in (ignored without a time trigger)
 * @param promptTemplate the user turn; contains {@value #EVENTS}
 */
@PublicEvolving
public record Summaries(int everyEvents, long everyMillis, TimeDomain timeDomain, String promptTemplate)
        implements Serializable {

    /** Which clock a time trigger follows. */
    @PublicEvolving
    public enum TimeDomain {
        /** Timers fire on watermarks; a summary covers the events whose time is within the period. */
        EVENT_TIME,
        /** Timers fire on the task manager's clock; a summary covers every event received so far. */
        PROCESSING_TIME
    }

    public static final String EVENTS = "{events}";
    public static final String SUMMARY = "{summary}";
    public static final String NO_SUMMARY = "(none yet)";

    /** The system prompt of {@link Task#summarize}. */
    public static final String DEFAULT_SYSTEM_PROMPT = "You summarize a stream of events. Each user message lists new "
            + "events; answer with an updated summary of all events so far, short and factual, nothing else.";

    /** The default user turn: the new events; the previous summary is the model's own last answer. */
    public static final String DEFAULT_TEMPLATE =
            "New events since your last summary:\n" + EVENTS + "\n\nWrite the updated summary.";

    public Summaries {
        if (everyEvents < 0) {
            throw new IllegalArgumentException("everyEvents is " + everyEvents
                    + ": pass 0 (no count trigger) or more to Task.summarize(everyEvents, ..)");
        }
        if (everyMillis < 0) {
            throw new IllegalArgumentException("the summary period is " + everyMillis
                    + " ms: pass Duration.ZERO (no time trigger) or a positive duration to Task.summarize(.., every, ..)");
        }
        if (everyEvents == 0 && everyMillis == 0) {
            throw new IllegalArgumentException("no summary trigger: pass everyEvents >= 1 or a positive duration "
                    + "to Task.summarize(everyEvents, every, timeDomain)");
        }
        if (everyMillis > 0 && timeDomain == null) {
            throw new IllegalArgumentException("a summary period needs a time domain: pass "
                    + "Summaries.TimeDomain.EVENT_TIME or PROCESSING_TIME to Task.summarize(.., .., timeDomain)");
        }
        if (promptTemplate == null || !promptTemplate.contains(EVENTS)) {
            throw new IllegalArgumentException("the summary prompt template must contain " + EVENTS
                    + " (where the new events go), got: " + promptTemplate);
        }
    }

    /** The period containing {@code time} ends at the returned timestamp (inclusive). */
    long periodEnd(long time) {
        return time - Math.floorMod(time, everyMillis) + everyMillis - 1;
    }

    /**
     * The user turn's text: the template with {@value #EVENTS} and {@value #SUMMARY} replaced, in
     * one pass (replacement text is not searched again).
     *
     * @param events the new events' texts, one per line
     * @param previousSummary the previous summary, or null before the first
     */
    String render(String events, String previousSummary) {
        StringBuilder out = new StringBuilder(promptTemplate.length() + events.length());
        int i = 0;
        while (i < promptTemplate.length()) {
            if (promptTemplate.startsWith(EVENTS, i)) {
                out.append(events);
                i += EVENTS.length();
            } else if (promptTemplate.startsWith(SUMMARY, i)) {
                out.append(previousSummary == null ? NO_SUMMARY : previousSummary);
                i += SUMMARY.length();
            } else {
                out.append(promptTemplate.charAt(i++));
            }
        }
        return out.toString();
    }
}
