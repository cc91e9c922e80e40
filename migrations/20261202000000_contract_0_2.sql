-- Gate contract 0.2: burn-in counts seconds. Stored outcomes written in
-- whole hours (`burn_in_remaining {hours, total}`, `burn_in_elapsed
-- {hours}`) are rewritten in seconds, so every stored outcome reads as the
-- current `GateStatus`; nothing else in them changes.

UPDATE gate_runs SET outcome_json = CASE
    WHEN json_type(outcome_json, '$.blocker.hours') IS NOT NULL
        AND json_extract(outcome_json, '$.blocker.kind') = 'burn_in_remaining'
    THEN json_set(json_remove(outcome_json, '$.blocker.hours', '$.blocker.total'),
                  '$.blocker.seconds', json_extract(outcome_json, '$.blocker.hours') * 3600,
                  '$.blocker.total_seconds', json_extract(outcome_json, '$.blocker.total') * 3600)
    WHEN json_type(outcome_json, '$.note.hours') IS NOT NULL
        AND json_extract(outcome_json, '$.note.kind') = 'burn_in_elapsed'
    THEN json_set(json_remove(outcome_json, '$.note.hours'),
                  '$.note.seconds', json_extract(outcome_json, '$.note.hours') * 3600)
    ELSE outcome_json
END
WHERE outcome_json LIKE '%"hours"%';

UPDATE reclassifications SET old_outcome_json = CASE
    WHEN json_type(old_outcome_json, '$.blocker.hours') IS NOT NULL
        AND json_extract(old_outcome_json, '$.blocker.kind') = 'burn_in_remaining'
    THEN json_set(json_remove(old_outcome_json, '$.blocker.hours', '$.blocker.total'),
                  '$.blocker.seconds', json_extract(old_outcome_json, '$.blocker.hours') * 3600,
                  '$.blocker.total_seconds', json_extract(old_outcome_json, '$.blocker.total') * 3600)
    WHEN json_type(old_outcome_json, '$.note.hours') IS NOT NULL
        AND json_extract(old_outcome_json, '$.note.kind') = 'burn_in_elapsed'
    THEN json_set(json_remove(old_outcome_json, '$.note.hours'),
                  '$.note.seconds', json_extract(old_outcome_json, '$.note.hours') * 3600)
    ELSE old_outcome_json
END
WHERE old_outcome_json LIKE '%"hours"%';

UPDATE reclassifications SET new_outcome_json = CASE
    WHEN json_type(new_outcome_json, '$.blocker.hours') IS NOT NULL
        AND json_extract(new_outcome_json, '$.blocker.kind') = 'burn_in_remaining'
    THEN json_set(json_remove(new_outcome_json, '$.blocker.hours', '$.blocker.total'),
                  '$.blocker.seconds', json_extract(new_outcome_json, '$.blocker.hours') * 3600,
                  '$.blocker.total_seconds', json_extract(new_outcome_json, '$.blocker.total') * 3600)
    WHEN json_type(new_outcome_json, '$.note.hours') IS NOT NULL
        AND json_extract(new_outcome_json, '$.note.kind') = 'burn_in_elapsed'
    THEN json_set(json_remove(new_outcome_json, '$.note.hours'),
                  '$.note.seconds', json_extract(new_outcome_json, '$.note.hours') * 3600)
    ELSE new_outcome_json
END
WHERE new_outcome_json LIKE '%"hours"%';

-- A component's shadow-test diff: `[{case, old, new}]`, each a GateStatus.
UPDATE components SET diff_json = (
    SELECT json_group_array(json_set(value,
        '$.old', json(CASE
    WHEN json_type(json_extract(value, '$.old'), '$.blocker.hours') IS NOT NULL
        AND json_extract(json_extract(value, '$.old'), '$.blocker.kind') = 'burn_in_remaining'
    THEN json_set(json_remove(json_extract(value, '$.old'), '$.blocker.hours', '$.blocker.total'),
                  '$.blocker.seconds', json_extract(json_extract(value, '$.old'), '$.blocker.hours') * 3600,
                  '$.blocker.total_seconds', json_extract(json_extract(value, '$.old'), '$.blocker.total') * 3600)
    WHEN json_type(json_extract(value, '$.old'), '$.note.hours') IS NOT NULL
        AND json_extract(json_extract(value, '$.old'), '$.note.kind') = 'burn_in_elapsed'
    THEN json_set(json_remove(json_extract(value, '$.old'), '$.note.hours'),
                  '$.note.seconds', json_extract(json_extract(value, '$.old'), '$.note.hours') * 3600)
    ELSE json_extract(value, '$.old')
END),
        '$.new', json(CASE
    WHEN json_type(json_extract(value, '$.new'), '$.blocker.hours') IS NOT NULL
        AND json_extract(json_extract(value, '$.new'), '$.blocker.kind') = 'burn_in_remaining'
    THEN json_set(json_remove(json_extract(value, '$.new'), '$.blocker.hours', '$.blocker.total'),
                  '$.blocker.seconds', json_extract(json_extract(value, '$.new'), '$.blocker.hours') * 3600,
                  '$.blocker.total_seconds', json_extract(json_extract(value, '$.new'), '$.blocker.total') * 3600)
    WHEN json_type(json_extract(value, '$.new'), '$.note.hours') IS NOT NULL
        AND json_extract(json_extract(value, '$.new'), '$.note.kind') = 'burn_in_elapsed'
    THEN json_set(json_remove(json_extract(value, '$.new'), '$.note.hours'),
                  '$.note.seconds', json_extract(json_extract(value, '$.new'), '$.note.hours') * 3600)
    ELSE json_extract(value, '$.new')
END)))
    FROM json_each(components.diff_json)
)
WHERE diff_json LIKE '%"hours"%';
