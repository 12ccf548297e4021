// The server side of one secure-aggregation round (Bonawitz et al. 2017, figure 4, honest-but-curious variant). It
// relays keys and ciphertexts, folds masked inputs into one running sum as they arrive (it never keeps a client's
// vector, masked or not), and at the end recovers, from t shares each, the self-mask seeds of the clients whose
// inputs are in the sum and the mask keys of the clients that dropped after sharing, which is exactly what removes
// every mask. Every message is checked against the round's state first; a bad one is a SecAggError that changes
// nothing.
import { SecAggError } from './errors.ts';
import { checkConfig, type SecAggConfig } from './config.ts';
import { agree, CIPHERTEXT_OVERHEAD, SEED_BYTES, expandMask, generateKeyPair, importPrivateKey, importPublicKey, KEY_BYTES, type KeyPair } from './crypto.ts';
import { buildGraph } from './graph.ts';
import type { AdvertiseKeys, MaskedInput, PublicKeys, RevealedShare, Roster, ShareKeys, SharesDelivery, UnmaskRequest, UnmaskResponse } from './messages.ts';
import { addInto, dequantizeSum, quantizer, subtractInto, type Quantizer } from './quantize.ts';
import { combineShares, SHARE_BYTES, shareFromBytes, type Share } from './shamir.ts';

type Phase = 'keys' | 'shares' | 'masked' | 'unmask' | 'done';

export interface SecAggResult {
  /** The sum of the contributors' quantized inputs modulo 2^32 (which, by the quantizer's headroom, is the sum). */
  readonly sum: Uint32Array;
  /** The dequantized float sum of the contributors' clipped inputs. */
  readonly values: Float64Array;
  /** Clients whose inputs are in the sum (U3). */
  readonly contributors: readonly number[];
  /** Clients that shared keys but sent no masked input (U2 \ U3), whose masks were removed from their mask keys. */
  readonly dropped: readonly number[];
}

export interface SecAggProgress {
  readonly phase: 'keys' | 'shares' | 'masked' | 'unmask' | 'done';
  /** Clients that advertised keys (U1 once the keys phase closed). */
  readonly advertised: number;
  /** Clients that shared keys (U2). */
  readonly shared: number;
  /** Clients whose masked input is in the running sum (U3). */
  readonly masked: number;
  /** Survivors that answered the unmask request. */
  readonly answered: number;
}

export class SecAggServer {
  readonly quantizer: Quantizer;
  private phase: Phase = 'keys';
  private readonly keys = new Map<number, PublicKeys>();
  private graph = new Map<number, Set<number>>();
  private graphSeed = 0;
  /** Share ciphertexts by sender and recipient, held only until they are delivered (closeShares). */
  private readonly ciphertexts = new Map<number, Map<number, Uint8Array>>();
  /** Clients that shared their keys (U2). */
  private readonly sharers = new Set<number>();
  /** The running sum of masked inputs; nothing else of a client's vector is kept. */
  private readonly maskedSum: Uint32Array;
  private readonly maskedFrom = new Set<number>();
  private readonly responders = new Set<number>();
  private readonly selfMaskShares = new Map<number, Share[]>();
  private readonly keyShares = new Map<number, Share[]>();
  private probe: Promise<KeyPair> | undefined;

  constructor(readonly config: SecAggConfig) {
    checkConfig(config);
    this.quantizer = quantizer(config.clip, config.maxClients);
    this.maskedSum = new Uint32Array(config.dimension);
  }

  /** How far the round has come: what a driver needs to close a phase as soon as everyone expected has spoken. */
  progress(): SecAggProgress {
    return {
      phase: this.phase, advertised: this.keys.size, shared: this.sharers.size, masked: this.maskedFrom.size, answered: this.responders.size,
    };
  }

  /** Round 0: a client's public keys. Keys X25519 refuses (low order points) are rejected here, not at every peer. */
  async receiveKeys(message: AdvertiseKeys): Promise<void> {
    this.expect('keys');
    const { id, maskKey, encryptionKey } = message;
    this.checkId(id, 'advertise_keys');
    if (this.keys.has(id)) throw new SecAggError('malformed_message', `client ${id} already advertised keys`);
    if (!(maskKey instanceof Uint8Array) || !(encryptionKey instanceof Uint8Array) || maskKey.length !== KEY_BYTES || encryptionKey.length !== KEY_BYTES) {
      throw new SecAggError('malformed_message', `client ${id}: public keys must be ${KEY_BYTES} bytes each`);
    }
    this.probe ??= generateKeyPair(false);
    const probe = await this.probe;
    for (const raw of [maskKey, encryptionKey]) {
      try {
        await agree(probe.privateKey, await importPublicKey(raw), 'probe', this.config.session);
      } catch (e) {
        throw new SecAggError('malformed_message', `client ${id}: unusable public key (${(e as Error).message})`);
      }
    }
    this.expect('keys'); // the round may have moved on while this was awaited
    if (this.keys.has(id)) throw new SecAggError('malformed_message', `client ${id} already advertised keys`);
    this.keys.set(id, { id, maskKey: maskKey.slice(), encryptionKey: encryptionKey.slice() });
  }

  /** Ends round 0: the roster (U1) every client receives. */
  closeKeys(graphSeed = globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!): Roster {
    this.expect('keys');
    this.need(this.keys.size, 'clients advertised keys');
    this.graphSeed = graphSeed >>> 0;
    this.graph = buildGraph(this.config.graph ?? { kind: 'complete' }, [...this.keys.keys()], this.graphSeed);
    this.phase = 'shares';
    return { kind: 'roster', session: this.config.session, graphSeed: this.graphSeed, participants: [...this.keys.values()] };
  }

  /** Round 1: a client's encrypted shares, exactly one for each of its neighbours. */
  receiveShares(message: ShareKeys): void {
    this.expect('shares');
    const { from, shares } = message;
    if (!this.keys.has(from)) throw new SecAggError('malformed_message', `client ${from} is not in the roster`);
    if (this.sharers.has(from)) throw new SecAggError('malformed_message', `client ${from} already shared keys`);
    const neighbours = this.graph.get(from)!;
    const to = new Set(shares.map((s) => s.to));
    if (!Array.isArray(shares) || to.size !== shares.length || to.size !== neighbours.size || [...to].some((v) => !neighbours.has(v))) {
      throw new SecAggError('malformed_message', `client ${from} must send one ciphertext to each of its ${neighbours.size} neighbours`);
    }
    const size = CIPHERTEXT_OVERHEAD + 2 * SHARE_BYTES;
    for (const s of shares) {
      if (!(s.ciphertext instanceof Uint8Array) || s.ciphertext.length !== size) {
        throw new SecAggError('malformed_message', `client ${from}: a share ciphertext is ${size} bytes`);
      }
    }
    this.ciphertexts.set(from, new Map(shares.map((s) => [s.to, s.ciphertext.slice()])));
    this.sharers.add(from);
  }

  /** Ends round 1: to each client that shared (U2), the ciphertexts addressed to it. */
  closeShares(): SharesDelivery[] {
    this.expect('shares');
    const senders = [...this.sharers].sort((a, b) => a - b);
    this.need(senders.length, 'clients shared keys');
    for (const u of senders) {
      // u's secrets are recoverable only while t of its holders (itself and its neighbours) are still here.
      const holders = 1 + [...this.graph.get(u)!].filter((v) => this.sharers.has(v)).length;
      if (holders < this.config.threshold) {
        throw new SecAggError('too_many_dropouts', `only ${holders} holders of client ${u}'s shares remain, threshold ${this.config.threshold}`);
      }
    }
    const deliveries = senders.map((to) => ({
      kind: 'shares_delivery' as const,
      to,
      senders,
      shares: senders.flatMap((from) => {
        const ciphertext = this.ciphertexts.get(from)!.get(to);
        return ciphertext === undefined ? [] : [{ from, ciphertext }];
      }),
    }));
    this.ciphertexts.clear(); // delivered: O(n^2) bytes the server need not keep
    this.phase = 'masked';
    return deliveries;
  }

  /** Round 2: a masked input, folded into the running sum at once. */
  receiveMasked(message: MaskedInput): void {
    this.expect('masked');
    const { from, masked } = message;
    if (!this.sharers.has(from)) throw new SecAggError('malformed_message', `client ${from} did not share keys`);
    if (this.maskedFrom.has(from)) throw new SecAggError('malformed_message', `client ${from} already sent a masked input`);
    if (!(masked instanceof Uint32Array) || masked.length !== this.config.dimension) {
      throw new SecAggError('malformed_message', `client ${from}: a masked input is a Uint32Array of ${this.config.dimension} words`);
    }
    addInto(this.maskedSum, masked);
    this.maskedFrom.add(from);
  }

  /** Ends round 2: the survivors (U3) every one of them receives. */
  closeMasked(): UnmaskRequest {
    this.expect('masked');
    this.need(this.maskedFrom.size, 'clients sent masked inputs');
    this.phase = 'unmask';
    return { kind: 'unmask_request', survivors: [...this.maskedFrom].sort((a, b) => a - b) };
  }

  /** Round 4: shares revealed by a survivor, only of the kind the protocol allows for each client. */
  receiveUnmask(message: UnmaskResponse): void {
    this.expect('unmask');
    const { from, selfMaskShares, keyShares } = message;
    if (!this.maskedFrom.has(from)) throw new SecAggError('malformed_message', `client ${from} is not a survivor`);
    if (this.responders.has(from)) throw new SecAggError('malformed_message', `client ${from} already answered`);
    const parse = (list: readonly RevealedShare[], survivor: boolean): { of: number; share: Share }[] => {
      if (!Array.isArray(list)) throw new SecAggError('malformed_message', `client ${from}: shares must be a list`);
      const seen = new Set<number>();
      return list.map(({ of, share }) => {
        const holds = of === from || this.graph.get(of)?.has(from) === true;
        if (!holds || !this.sharers.has(of) || this.maskedFrom.has(of) !== survivor || seen.has(of)) {
          throw new SecAggError('malformed_message', `client ${from} may not reveal a ${survivor ? 'self-mask' : 'mask-key'} share of client ${of}`);
        }
        seen.add(of);
        if (!(share instanceof Uint8Array)) throw new SecAggError('malformed_message', `client ${from}: a share is bytes`);
        return { of, share: { x: from, y: shareFromBytes(share) } };
      });
    };
    // Both lists are checked before either is kept, so a bad response changes nothing.
    const self = parse(selfMaskShares, true);
    const key = parse(keyShares, false);
    for (const { of, share } of self) push(this.selfMaskShares, of, share);
    for (const { of, share } of key) push(this.keyShares, of, share);
    this.responders.add(from);
  }

  /**
   * Ends the round: removes every self mask of U3 and every pairwise mask between U3 and U2 \ U3, leaving the sum of
   * U3's quantized inputs. Fails with too_many_dropouts when some secret has fewer than t shares.
   */
  async finish(): Promise<SecAggResult> {
    this.expect('unmask');
    const { threshold, dimension, session } = this.config;
    this.need(this.responders.size, 'survivors answered the unmask request');
    const contributors = [...this.maskedFrom].sort((a, b) => a - b);
    const dropped = [...this.sharers].filter((u) => !this.maskedFrom.has(u)).sort((a, b) => a - b);
    for (const [who, store, what] of [[contributors, this.selfMaskShares, 'self-mask'], [dropped, this.keyShares, 'mask-key']] as const) {
      for (const u of who) {
        const have = store.get(u)?.length ?? 0;
        if (have < threshold) {
          throw new SecAggError('too_many_dropouts', `${have} ${what} shares of client ${u} arrived, ${threshold} needed to unmask the sum`);
        }
      }
    }
    const sum = this.maskedSum.slice();
    for (const u of contributors) {
      const seed = combineShares(this.selfMaskShares.get(u)!, threshold, SEED_BYTES);
      subtractInto(sum, await expandMask(seed, dimension));
    }
    for (const u of dropped) {
      const scalar = combineShares(this.keyShares.get(u)!, threshold, KEY_BYTES);
      const privateKey = await importPrivateKey(scalar, this.keys.get(u)!.maskKey);
      for (const v of this.graph.get(u)!) {
        if (!this.maskedFrom.has(v)) continue;
        // v's input holds -(u's term toward v); adding u's term cancels it.
        const seed = await agree(privateKey, await importPublicKey(this.keys.get(v)!.maskKey), 'pairwise-mask', session);
        const mask = await expandMask(seed, dimension);
        if (u < v) addInto(sum, mask);
        else subtractInto(sum, mask);
      }
    }
    this.phase = 'done';
    return { sum, values: dequantizeSum(sum, contributors.length, this.quantizer), contributors, dropped };
  }

  private need(count: number, what: string): void {
    if (count < this.config.threshold) {
      throw new SecAggError('too_many_dropouts', `only ${count} ${what}; the threshold is ${this.config.threshold}`);
    }
  }

  private checkId(id: unknown, kind: string): void {
    if (!Number.isInteger(id) || (id as number) < 1 || (id as number) > this.config.maxClients) {
      throw new SecAggError('malformed_message', `${kind}: client id must be an integer in [1, ${this.config.maxClients}]`);
    }
  }

  private expect(phase: Phase): void {
    if (this.phase !== phase) throw new SecAggError('wrong_phase', `the server is in phase ${this.phase}, not ${phase}`);
  }
}

function push(map: Map<number, Share[]>, key: number, share: Share): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [share]);
  else list.push(share);
}
