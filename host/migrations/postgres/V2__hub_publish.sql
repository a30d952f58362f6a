-- Publishing in one round trip (a single statement is its own
-- transaction): the fence check, the lock that makes commit order equal
-- seq order, the append and the wake-up. o_seq is NULL when the fence
-- check failed; o_holder / o_fence then say who holds the instance.
CREATE FUNCTION hub_publish(
    p_origin text, p_topic text, p_payload text,
    p_instance text, p_fence bigint, p_lock bigint, p_channel text,
    OUT o_seq bigint, OUT o_holder text, OUT o_fence bigint)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_instance IS NOT NULL THEN
        SELECT l.node, l.fence INTO o_holder, o_fence
            FROM leases l WHERE l.instance = p_instance FOR SHARE;
        IF o_holder IS DISTINCT FROM p_origin OR o_fence IS DISTINCT FROM p_fence THEN
            RETURN;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock);
    INSERT INTO cluster_log (origin, topic, payload)
        VALUES (p_origin, p_topic, p_payload)
        RETURNING cluster_log.seq INTO o_seq;
    PERFORM pg_notify(p_channel, 'msg:' || o_seq);
END
$$;
