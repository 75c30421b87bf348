"""The built-in synthetic language, whose true next-token distribution is known exactly.

It is a hidden Markov model: hidden states are (topic, grammatical role) pairs, each state
emits one word, so the text reads like very simple English ("the old cow saw a goat near the
barn ."). Documents end with <eos>, after which the topic is drawn afresh, so documents are
independent and the forward algorithm gives the exact next-token distribution p*(x_t | x_<t)
of any window that starts at an <eos>: a model's excess loss KL(p* || p) and a sampler's
garbage and lost mass are then measured, not guessed. data.py writes its corpus.
"""
import numpy as np
import torch

EOS = "<eos>"
UNK = "<unk>"

# ----------------------------------------------------------------------------
# The synthetic language

TOPIC_NOUNS = {
    "farm": "cow pig hen horse goat farmer barn field dog sheep",
    "sea": "fish boat crab sailor wave shell whale gull ship shore",
    "forest": "fox bear owl tree deer wolf mouse hunter bird rabbit",
    "kitchen": "cook cake bread pot cup spoon soup apple egg table",
    "town": "man woman baker shop car street child doctor house dog",
    "school": "teacher boy girl book pen desk lesson ball friend child",
    "sky": "bird cloud star moon sun kite rain wind plane rainbow",
    "castle": "king queen knight dragon prince princess sword tower guard horse",
}
WORD_CLASSES = {
    "det": "the my his her our this that every one their",
    "adj": "big small old young red green happy sad little quick slow brave kind tall dark bright "
           "soft loud quiet hungry tired wet cold warm",
    "verb_t": "saw liked found took made chased fed ate held lost pushed helped watched painted "
              "carried opened loved kicked washed caught heard met followed built",
    "verb_i": "ran slept sang jumped smiled cried swam flew laughed waited danced fell sat played shouted",
    "adv": "quickly slowly happily quietly again today loudly softly away home",
    "prep": "in on near under by with behind over",
    "pron": "he she it they we",
    "name": "tom anna sam lily ben mia max zoe",
    "conj": "and but then so",
    "end": ".",
}
# role -> (word class, {next role: base probability}); "doc_end" is shared by all topics.
GRAMMAR = {
    "start": ("", {"det_s": 0.55, "pron": 0.2, "name_s": 0.25}),
    "det_s": ("det", {"adj_s": 0.4, "noun_s": 0.6}),
    "adj_s": ("adj", {"adj_s": 0.15, "noun_s": 0.85}),
    "noun_s": ("noun", {"verb_t": 0.6, "verb_i": 0.4}),
    "pron": ("pron", {"verb_t": 0.55, "verb_i": 0.45}),
    "name_s": ("name", {"verb_t": 0.6, "verb_i": 0.4}),
    "verb_t": ("verb_t", {"det_o": 0.85, "name_o": 0.15}),
    "det_o": ("det", {"adj_o": 0.35, "noun_o": 0.65}),
    "adj_o": ("adj", {"noun_o": 1.0}),
    "noun_o": ("noun", {"end": 0.5, "prep": 0.25, "conj": 0.25}),
    "name_o": ("name", {"end": 0.6, "prep": 0.2, "conj": 0.2}),
    "verb_i": ("verb_i", {"end": 0.4, "adv": 0.3, "prep": 0.3}),
    "adv": ("adv", {"end": 0.8, "conj": 0.2}),
    "prep": ("prep", {"det_p": 1.0}),
    "det_p": ("det", {"noun_p": 1.0}),
    "noun_p": ("noun", {"end": 0.8, "conj": 0.2}),
    "conj": ("conj", {"pron": 0.4, "verb_i": 0.3, "det_s": 0.3}),
    "end": ("end", {"start": 0.84, "doc_end": 0.14, "switch": 0.02}),  # switch: start of another topic
}


class SyntheticLanguage:
    """A seeded HMM over ~200 English words with exact next-token probabilities.

    `trans` (S, S) and `emit` (S, V) are the transition and emission matrices; `start` (S,)
    is the state distribution right after <eos>. "start" roles emit nothing: they are folded
    into the transitions, so every state emits exactly one token."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        nouns = sorted({w for ws in TOPIC_NOUNS.values() for w in ws.split()})
        words = {cls: ws.split() for cls, ws in WORD_CLASSES.items()}
        self.vocab = [EOS, UNK] + sorted({w for ws in words.values() for w in ws} | set(nouns))
        self.eos_id = 0
        token_id = {w: i for i, w in enumerate(self.vocab)}
        topics = list(TOPIC_NOUNS)
        roles = [r for r in GRAMMAR if r != "start"]
        states = [(t, r) for t in topics for r in roles] + [("", "doc_end")]
        index = {s: i for i, s in enumerate(states)}
        S, V = len(states), len(self.vocab)
        trans, emit = np.zeros((S, S)), np.zeros((S, V))
        topic_prior = rng.dirichlet(np.full(len(topics), 5.0))

        def start_of(topic):  # the "start" role's successors, as a distribution over states
            dist = np.zeros(S)
            for role, p in topic_start[topic].items():
                dist[index[(topic, role)]] += p
            return dist

        # each topic draws its own branching probabilities and its own words of every class
        topic_start, topic_next, topic_words = {}, {}, {}
        for t in topics:
            topic_next[t] = {r: dict(zip(nxt, rng.dirichlet(20 * np.array(list(nxt.values())))))
                             for r, (_, nxt) in GRAMMAR.items()}
            topic_start[t] = topic_next[t]["start"]
            topic_words[t] = {cls: rng.choice(ws, size=min(len(ws), 10), replace=False)
                              for cls, ws in words.items()} | {"noun": np.array(TOPIC_NOUNS[t].split())}
        self.start = sum(topic_prior[i] * start_of(t) for i, t in enumerate(topics))
        for t in topics:
            for r in roles:
                i = index[(t, r)]
                cls = GRAMMAR[r][0]
                chosen = topic_words[t][cls]
                emit[i, [token_id[w] for w in chosen]] = rng.dirichlet(np.ones(len(chosen)))
                for nxt, p in topic_next[t][r].items():
                    if nxt == "start":
                        trans[i] += p * start_of(t)
                    elif nxt == "switch":  # a new sentence about another topic, same document
                        others = [u for u in topics if u != t]
                        trans[i] += p * sum(start_of(u) for u in others) / len(others)
                    elif nxt == "doc_end":
                        trans[i, index[("", "doc_end")]] += p
                    else:
                        trans[i, index[(t, nxt)]] += p
        trans[index[("", "doc_end")]] = self.start
        emit[index[("", "doc_end")], self.eos_id] = 1.0
        self.trans, self.emit, self.states = trans, emit, states
        self.vocab_size = V

    def sample_tokens(self, num_tokens, seed):
        """Whole documents, each ending in <eos>, until there are at least num_tokens tokens.

        Documents are independent, so they are generated in parallel: one hidden chain per
        document, advanced together; a chain drops out at its <eos>. Deterministic in seed."""
        rng = np.random.default_rng(seed)
        tables = _sparse_cdf(self.trans), _sparse_cdf(self.emit)  # once, not per batch of documents
        docs, total = [], 0
        while total < num_tokens:
            batch = self._sample_docs(4096, rng, *tables)
            docs.extend(batch)
            total += sum(len(d) for d in batch)
        lengths = np.cumsum([len(d) for d in docs])
        keep = int(np.searchsorted(lengths, num_tokens)) + 1  # the fewest documents that suffice
        return np.concatenate(docs[:keep])

    def _sample_docs(self, n_docs, rng, trans_table, emit_table):
        (trans_next, trans_cdf), (emit_next, emit_cdf) = trans_table, emit_table
        doc = np.arange(n_docs)
        state = self.states.index(("", "doc_end"))
        state = trans_next[state][_draw(trans_cdf[np.full(n_docs, state)], rng)]
        doc_ids, tokens = [], []
        while len(doc):
            tok = emit_next[state, _draw(emit_cdf[state], rng)]
            doc_ids.append(doc)
            tokens.append(tok)
            alive = tok != self.eos_id
            doc, state = doc[alive], state[alive]
            state = trans_next[state, _draw(trans_cdf[state], rng)]
        doc_ids, tokens = np.concatenate(doc_ids), np.concatenate(tokens)
        order = np.argsort(doc_ids, kind="stable")  # stable: keeps each document's tokens in order
        return np.split(tokens[order], np.cumsum(np.bincount(doc_ids, minlength=n_docs))[:-1])

    def next_token_probs(self, windows):
        """p*(x_{t+1} | x_0..x_t) for every window (W, T) that starts with <eos>: (W, T, V).

        Position t lines up with the model's logits at t (which predict x_{t+1})."""
        windows = np.asarray(windows)
        if (windows[:, 0] != self.eos_id).any():
            raise ValueError("next_token_probs needs windows that start at an <eos> token")
        W, T = windows.shape
        out = np.empty((W, T, self.vocab_size))
        belief = np.zeros((W, len(self.states)))
        belief[:, self.states.index(("", "doc_end"))] = 1.0  # the only state that emits <eos>
        for t in range(T):
            belief = belief * self.emit[:, windows[:, t]].T  # condition on the token just seen
            belief /= belief.sum(1, keepdims=True)
            predicted_state = belief @ self.trans
            out[:, t] = predicted_state @ self.emit
            belief = predicted_state
        return out

    def decode(self, ids):
        return " ".join(self.vocab[i] if i != self.eos_id else "\n" for i in ids)


def _sparse_cdf(probs):
    """Each row's nonzero entries as (column ids, cumulative probabilities), padded to one width.

    Padding repeats the row's last column with cdf 1, so a draw never lands on it wrongly."""
    width = int((probs > 0).sum(1).max())
    cols = np.zeros((len(probs), width), dtype=np.int64)
    cdf = np.ones((len(probs), width))
    for i, row in enumerate(probs):
        nz = np.flatnonzero(row)
        cols[i, :len(nz)], cols[i, len(nz):] = nz, nz[-1]
        cdf[i, :len(nz)] = np.cumsum(row[nz]) / row[nz].sum()
    return cols, cdf


def _draw(cdf, rng):
    """One column per row of (N, K) cumulative probabilities."""
    u = rng.random((cdf.shape[0], 1))
    return np.minimum((cdf < u).sum(1), cdf.shape[1] - 1)


def document_windows(tokens, eos_id, n_windows, length, disjoint=False):
    """The first n_windows windows of `length` tokens that start at an <eos>: the windows
    whose exact next-token distributions SyntheticLanguage.next_token_probs can give.
    disjoint=True: windows that never overlap (each position counts once), n_windows of them
    spread evenly over the whole text instead of the first ones."""
    if len(tokens) <= length:
        raise ValueError(f"the val split has {len(tokens):,} tokens, too few for one window of {length}: "
                         f"generate more (data.py --val_tokens) or use a smaller --block_size")
    starts = np.flatnonzero(np.asarray(tokens[:len(tokens) - length + 1]) == eos_id)
    if len(starts) == 0:
        raise ValueError("the val split holds no <eos> to start an exact-probability window at")
    if disjoint:
        free = [starts[0]]
        for s in starts[1:]:
            if s >= free[-1] + length:
                free.append(s)
        starts = np.asarray(free)[np.linspace(0, len(free) - 1, min(n_windows, len(free))).round().astype(int)]
    return np.stack([np.asarray(tokens[i:i + length], dtype=np.int64) for i in starts[:n_windows]])


def truth_windows(meta, tokens, n_windows, block_size, device="cpu"):
    """(x (W, T) int64, p* (W, T, V) fp32) on device: the first n_windows windows of held-out
    synthetic text that start at an <eos>, and the exact next-token distribution at each position."""
    lang = SyntheticLanguage(meta["seed"])
    windows = document_windows(tokens, lang.eos_id, n_windows, block_size + 1)
    x = torch.from_numpy(windows[:, :-1])
    return x.to(device), torch.from_numpy(lang.next_token_probs(x.numpy())).float().to(device)


def kl_to_truth(p_true, logits):
    """Mean over positions of KL(p* || softmax(logits)); 0 log 0 = 0, and inf where the model
    gives zero probability to a token that p* can emit."""
    log_q = torch.log_softmax(logits.float(), dim=-1)
    terms = torch.where(p_true > 0, p_true * (p_true.clamp_min(1e-30).log() - log_q), torch.zeros_like(p_true))
    return terms.sum(-1).mean().item()


def truth_entropy(p_true):
    """H(p*) at each position (...), in nats; its mean is the loss a perfect model would reach."""
    return -torch.special.xlogy(p_true.float(), p_true.float()).sum(-1)
