// Device options the host sets before or between negotiations (DeviceOption in abi.ts).

import { BackendKind, Code, CsumPolicy, Ctrl, DeviceOption, GsoMask, Status } from "../abi";
import { filterUpdate } from "./filter";
import { device } from "../state";
import { setLink } from "./device";
import { rxPoolRelease } from "./rx";

/** Sets an option; INVALID for an unknown option or value, SEQUENCE where it can no longer change. */
export function setOption(st: usize, option: u32, value: u32): i32 {
  const d = device(st);
  switch (option) {
    case DeviceOption.BACKEND:
      if (value > <u32>BackendKind.TUN_HDR) return Code.INVALID;
      if (d.txHead >= 0 || d.rxHead >= 0) return Code.SEQUENCE;
      // Pooled RX buffers were prepared for the old kind's header layout: give them back.
      rxPoolRelease(st);
      d.backend = value;
      return Code.OK;
    case DeviceOption.CSUM_POLICY:
      if (value > <u32>CsumPolicy.PASS) return Code.INVALID;
      d.csumPolicy = value;
      return Code.OK;
    case DeviceOption.LOCKED_MAC:
      d.lockedMac = value != 0 ? 1 : 0;
      filterUpdate(st);
      return Code.OK;
    case DeviceOption.MTU:
      // virtio 1.2, 5.1.4.1: 68..65535, and immutable once the driver may have read it.
      if (value < 68 || value > 65535) return Code.INVALID;
      if ((d.status & Status.FEATURES_OK) != 0) return Code.SEQUENCE;
      d.mtu = value;
      return Code.OK;
    case DeviceOption.LINK_UP:
      setLink(st, value != 0);
      return Code.OK;
    case DeviceOption.BACKEND_GSO:
      if ((value & ~(<u32>GsoMask.ALL)) != 0) return Code.INVALID;
      d.backendGso = value;
      return Code.OK;
    case DeviceOption.MAX_QUEUE_PAIRS:
      // virtio 1.2, 5.1.4: 1..0x8000; fixed once the driver may have read it.
      if (value < 1 || value > <u32>Ctrl.PAIRS_MAX) return Code.INVALID;
      if ((d.status & Status.FEATURES_OK) != 0) return Code.SEQUENCE;
      d.maxPairs = value;
      return Code.OK;
  }
  return Code.INVALID;
}

export function getOption(st: usize, option: u32): u32 {
  const d = device(st);
  switch (option) {
    case DeviceOption.BACKEND: return d.backend;
    case DeviceOption.CSUM_POLICY: return d.csumPolicy;
    case DeviceOption.LOCKED_MAC: return d.lockedMac;
    case DeviceOption.MTU: return d.mtu;
    case DeviceOption.LINK_UP: return d.linkUp;
    case DeviceOption.BACKEND_GSO: return d.backendGso;
    case DeviceOption.MAX_QUEUE_PAIRS: return d.maxPairs;
  }
  return 0;
}
