/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.jobs.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code --name value} and {@code --flag} options of one command, checked against the names the
 * command knows, so that a typo is an error that names the option, never silently ignored.
 */
final class Args {

    private final String command;
    private final Map<String, String> values = new LinkedHashMap<>();
    private final Map<String, List<String>> repeated = new LinkedHashMap<>();

    private Args(String command) {
        this.command = command;
    }

    /**
     * @param valued options that take a value
     * @param flags options that take none
     */
    static Args parse(String command, List<String> argv, Set<String> valued, Set<String> flags) {
        return parse(command, argv, valued, flags, Set.of());
    }

    /**
     * @param repeatable options that take a value and may be given more than once ({@link #all})
     */
    static Args parse(String command, List<String> argv, Set<String> valued, Set<String> flags,
            Set<String> repeatable) {
        Args a = new Args(command);
        for (int i = 0; i < argv.size(); i++) {
            String arg = argv.get(i);
            if (!arg.startsWith("--")) {
                throw new UsageException(command + ": unexpected argument '" + arg + "'");
            }
            String name = arg.substring(2);
            String inline = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                inline = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (flags.contains(name)) {
                if (inline != null) {
                    throw new UsageException(command + ": --" + name + " takes no value");
                }
                a.values.put(name, "true");
            } else if (repeatable.contains(name)) {
                if (inline == null && i + 1 >= argv.size()) {
                    throw new UsageException(command + ": --" + name + " needs a value");
                }
                a.repeated.computeIfAbsent(name, k -> new ArrayList<>()).add(inline != null ? inline : argv.get(++i));
            } else if (valued.contains(name)) {
                String value = inline;
                if (value == null) {
                    if (i + 1 >= argv.size()) {
                        throw new UsageException(command + ": --" + name + " needs a value");
                    }
                    value = argv.get(++i);
                }
                if (a.values.put(name, value) != null) {
                    throw new UsageException(command + ": --" + name + " given twice");
                }
            } else {
                throw new UsageException(command + ": unknown option --" + name + " (see '" + command + " --help')");
            }
        }
        return a;
    }

    /** Every value of a repeatable option, in command-line order; empty if not given. */
    List<String> all(String name) {
        return List.copyOf(repeated.getOrDefault(name, List.of()));
    }

    boolean has(String name) {
        return values.containsKey(name);
    }

    String string(String name) {
        String v = values.get(name);
        if (v == null) {
            throw new UsageException(command + ": --" + name + " is required");
        }
        return v;
    }

    String string(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    int integer(String name, int fallback) {
        String v = values.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + name + " must be an integer, got '" + v + "'");
        }
    }

    long longValue(String name, long fallback) {
        String v = values.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + name + " must be an integer, got '" + v + "'");
        }
    }

    float number(String name, float fallback) {
        String v = values.get(name);
        if (v == null) {
            return fallback;
        }
        try {
            return Float.parseFloat(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(command + ": --" + name + " must be a number, got '" + v + "'");
        }
    }

    boolean flag(String name) {
        return values.containsKey(name);
    }

    /** A comma-separated list of token ids. */
    int[] ids(String name) {
        String v = string(name);
        String[] parts = v.split(",");
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                throw new UsageException(
                        command + ": --" + name + " must be comma-separated token ids, got '" + parts[i] + "' at position " + i);
            }
        }
        return ids;
    }

    /** A wrong command line: printed with the usage hint, exit code 2. */
    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
